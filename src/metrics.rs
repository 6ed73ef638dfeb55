//! Prometheus metrics: names, the exporter, and the gauges sampled in the
//! background.

use std::{net::SocketAddr, sync::OnceLock, time::Duration};

use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

use crate::storage::{Engine, TokenStore};

/// Calls by method and gRPC code, with latency.
pub const RPC_DURATION: &str = "tokend_rpc_duration_seconds";
/// Validate outcomes by result.
pub const VALIDATE_RESULTS: &str = "tokend_validate_results_total";
/// Cache lookups by outcome (`hit` or `miss`).
pub const CACHE_LOOKUPS: &str = "tokend_cache_lookups_total";
/// Entries in the lookup cache.
pub const CACHE_ENTRIES: &str = "tokend_cache_entries";
/// Last-used flushes that wrote at least one row.
pub const LAST_USED_FLUSHES: &str = "tokend_last_used_flushes_total";
/// Tokens whose last-used time was written.
pub const LAST_USED_TOKENS: &str = "tokend_last_used_tokens_total";
/// Tokens found under a previous hashing key and re-hashed.
pub const REHASHED_TOKENS: &str = "tokend_rehashed_tokens_total";
/// Database pool connections by state (`idle` or `in_use`).
pub const POOL_CONNECTIONS: &str = "tokend_db_pool_connections";

/// Latency buckets in seconds, dense below a millisecond where cached
/// validations land.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5,
];

/// Serves metrics in the Prometheus text format on `address` at any path.
///
/// # Errors
///
/// Returns an error when the listener cannot start or a recorder exists already.
pub fn install(address: SocketAddr) -> anyhow::Result<()> {
    PrometheusBuilder::new()
        .with_http_listener(address)
        .set_buckets_for_metric(Matcher::Full(RPC_DURATION.to_owned()), LATENCY_BUCKETS)?
        .install()
        .map_err(|error| {
            anyhow::anyhow!("failed to start the metrics listener on {address}: {error}")
        })?;
    // The handles must come from the installed recorder, so they are
    // registered here and never before.
    let _ = HOT_PATH.set(HotPath::register());
    // Registering the rare counters makes them appear as 0 from the start,
    // so an alert on them gets a value instead of no data.
    for name in [LAST_USED_FLUSHES, LAST_USED_TOKENS, REHASHED_TOKENS] {
        metrics::counter!(name).absolute(0);
    }
    tracing::info!(%address, "serving Prometheus metrics");
    Ok(())
}

/// Samples the pool's connection counts into gauges.
pub fn sample_pool(store: &TokenStore) {
    let (size, idle) = match store.engine() {
        Engine::Sqlite => {
            let pool = store.connection().get_sqlite_connection_pool();
            (pool.size(), pool.num_idle())
        }
        Engine::Postgres => {
            let pool = store.connection().get_postgres_connection_pool();
            (pool.size(), pool.num_idle())
        }
    };
    let idle = idle as u32;
    metrics::gauge!(POOL_CONNECTIONS, "state" => "idle").set(f64::from(idle));
    metrics::gauge!(POOL_CONNECTIONS, "state" => "in_use")
        .set(f64::from(size.saturating_sub(idle)));
}

/// The methods whose successful calls have a pre-registered histogram.
const METHODS: [&str; 4] = ["Generate", "List", "Revoke", "Validate"];

/// The Validate results, as the `result` label spells them.
const RESULTS: [&str; 6] = [
    "valid",
    "malformed",
    "not_found",
    "expired",
    "revoked",
    "insufficient_scope",
];

/// Handles of the metrics that every call updates. A `counter!` or
/// `histogram!` call builds its key, copies it and looks it up in the
/// registry each time. In a profile that cost about a microsecond per
/// Validate. A registered handle is one atomic update.
struct HotPath {
    cache_hit: Counter,
    cache_miss: Counter,
    results: [Counter; RESULTS.len()],
    succeeded: [Histogram; METHODS.len()],
}

/// Set once the exporter is installed; empty while metrics are off, so the
/// hot path then records nothing at all.
static HOT_PATH: OnceLock<HotPath> = OnceLock::new();

impl HotPath {
    fn register() -> Self {
        Self {
            cache_hit: metrics::counter!(CACHE_LOOKUPS, "outcome" => "hit"),
            cache_miss: metrics::counter!(CACHE_LOOKUPS, "outcome" => "miss"),
            results: RESULTS.map(|result| metrics::counter!(VALIDATE_RESULTS, "result" => result)),
            succeeded: METHODS.map(
                |method| metrics::histogram!(RPC_DURATION, "method" => method, "code" => "OK"),
            ),
        }
    }
}

/// Counts one cache lookup.
pub fn cache_lookup(hit: bool) {
    if let Some(hot) = HOT_PATH.get() {
        let counter = if hit { &hot.cache_hit } else { &hot.cache_miss };
        counter.increment(1);
    }
}

/// Counts one Validate result, named as in [`RESULTS`].
pub fn validate_result(result: &'static str) {
    let Some(hot) = HOT_PATH.get() else {
        return;
    };
    match RESULTS.iter().position(|known| *known == result) {
        Some(index) => hot.results[index].increment(1),
        None => metrics::counter!(VALIDATE_RESULTS, "result" => result).increment(1),
    }
}

/// Records the duration of one finished call with gRPC code `code`.
pub fn rpc_finished(method: &'static str, code: &'static str, elapsed: Duration) {
    let Some(hot) = HOT_PATH.get() else {
        return;
    };
    let registered = (code == "OK")
        .then(|| METHODS.iter().position(|known| *known == method))
        .flatten();
    match registered {
        Some(index) => hot.succeeded[index].record(elapsed.as_secs_f64()),
        None => metrics::histogram!(RPC_DURATION, "method" => method, "code" => code)
            .record(elapsed.as_secs_f64()),
    }
}
