//! Prometheus metrics: names, the exporter, and the gauges sampled in the
//! background.

use std::net::SocketAddr;

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
