//! Server wiring: the token service, health, reflection and graceful shutdown.

use std::{future::Future, time::Duration};

use tokio::net::TcpListener;
use tonic::transport::{Server, ServerTlsConfig, server::TcpIncoming};
use tonic_health::{ServingStatus, server::HealthReporter};

use crate::{
    grpc::{TokenServiceHandlers, pb},
    service::TokenManager,
    storage,
};

/// Intervals of the server's background tasks, and its TLS settings.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Interval between health pings of the database.
    pub health_interval: Duration,
    /// How often pending last-used times are written.
    pub flush_interval: Duration,
    /// How long in-flight calls may run after a shutdown signal.
    pub shutdown_grace: Duration,
    /// Certificate, key and optional client CA; plaintext when `None`.
    /// [`crate::tls::ServerTlsArgs::load`] builds it from the flags.
    pub tls: Option<ServerTlsConfig>,
}

/// Largest request message accepted, in bytes. The biggest valid request,
/// a Generate with 32 scopes of 64 characters and a 100-character name,
/// is under 3 KiB.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// Largest header list accepted, in bytes. It bounds a huge or repeated
/// `authorization` header before any handler runs.
pub const MAX_HEADER_LIST_BYTES: u32 = 16 * 1024;

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            health_interval: Duration::from_secs(1),
            flush_interval: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(30),
            tls: None,
        }
    }
}

/// Serves the token service on `listener` until `shutdown` completes, then
/// lets in-flight calls finish.
///
/// Health starts `NOT_SERVING` and is `SERVING` only while the database
/// answers a ping. Background tasks also flush last-used times and, on
/// PostgreSQL, evict tokens that other replicas revoke. After the last call
/// finishes, pending last-used times are written once more.
///
/// # Errors
///
/// Returns the transport error when the TLS configuration is invalid or
/// serving fails.
pub async fn serve(
    manager: TokenManager,
    listener: TcpListener,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let (reporter, health_service) = tonic_health::server::health_reporter();
    set_health(&reporter, ServingStatus::NotServing).await;
    let background = [
        tokio::spawn(watch_database(
            manager.clone(),
            reporter,
            options.health_interval,
        )),
        tokio::spawn(flush_usage(manager.clone(), options.flush_interval)),
        tokio::spawn(evict_revoked(manager.clone())),
    ];

    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;

    let address = listener.local_addr()?;
    tracing::info!(%address, "tokend listening");

    let tokens = pb::token_service_server::TokenServiceServer::new(TokenServiceHandlers::new(
        manager.clone(),
    ))
    .max_decoding_message_size(MAX_REQUEST_BYTES);
    let (stopping, stopped) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        let _ = stopping.send(());
    };
    // Without TCP_NODELAY, Nagle's algorithm and delayed ACKs add about
    // 40 ms to every small response on Linux.
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let mut builder = Server::builder();
    if let Some(tls) = options.tls {
        builder = builder.tls_config(tls)?;
    }
    let serving = builder
        .http2_max_header_list_size(Some(MAX_HEADER_LIST_BYTES))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(tokens)
        .serve_with_incoming_shutdown(incoming, signal);
    // After the signal, in-flight calls get the grace period and no more.
    let grace = async {
        if stopped.await.is_ok() {
            tokio::time::sleep(options.shutdown_grace).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    let result = tokio::select! {
        result = serving => result,
        () = grace => {
            tracing::warn!(grace = ?options.shutdown_grace, "shutdown grace period over; dropping calls still in flight");
            Ok(())
        }
    };

    for task in background {
        task.abort();
    }
    match manager.flush_usage().await {
        Ok(written) => tracing::info!(tokens = written, "wrote pending last-used times"),
        Err(error) => {
            tracing::error!(%error, "failed to write pending last-used times at shutdown")
        }
    }
    result?;
    tracing::info!("tokend stopped");
    Ok(())
}

/// Writes pending last-used times every `interval`, one statement per flush.
async fn flush_usage(manager: TokenManager, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if let Err(error) = manager.flush_usage().await {
            tracing::error!(%error, "failed to write last-used times; keeping them for the next flush");
        }
    }
}

/// Evicts tokens that other replicas revoke, and clears the cache whenever
/// the notice stream restarts, since notices may have been lost.
async fn evict_revoked(manager: TokenManager) {
    let store = manager.store().clone();
    let evicting = manager.clone();
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
    let forward = storage::listener::listen_revocations(
        store,
        move |id| {
            let _ = sender.send(id);
        },
        move || evicting.cache().invalidate_all(),
    );
    let evict = async {
        while let Some(id) = receiver.recv().await {
            manager.evict(id).await;
        }
    };
    tokio::join!(forward, evict);
}

/// Describes every served service, and `google.rpc` so that clients such as
/// grpcurl can decode the `BadRequest` details of errors.
fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
}

/// Pings the database forever, flipping health on every change.
async fn watch_database(manager: TokenManager, reporter: HealthReporter, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut serving = false;
    loop {
        ticker.tick().await;
        // A ping that hangs counts as a failure once the interval has passed.
        let result = tokio::time::timeout(
            interval.max(Duration::from_millis(500)),
            manager.store().ping(),
        )
        .await;
        let answered = matches!(result, Ok(Ok(())));
        crate::metrics::sample_pool(manager.store());
        metrics::gauge!(crate::metrics::CACHE_ENTRIES).set(manager.cache().len() as f64);
        if answered == serving {
            continue;
        }
        serving = answered;
        if serving {
            tracing::info!("database responds; health is SERVING");
            set_health(&reporter, ServingStatus::Serving).await;
        } else {
            let error = match result {
                Ok(Err(error)) => error.to_string(),
                _ => "ping timed out".to_owned(),
            };
            tracing::error!(%error, "database does not respond; health is NOT_SERVING");
            set_health(&reporter, ServingStatus::NotServing).await;
        }
    }
}

async fn set_health(reporter: &HealthReporter, status: ServingStatus) {
    reporter.set_service_status("", status).await;
    reporter
        .set_service_status(
            <pb::token_service_server::TokenServiceServer<TokenServiceHandlers> as tonic::server::NamedService>::NAME,
            status,
        )
        .await;
}

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "failed to listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "failed to listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();

    tokio::select! {
        () = interrupt => tracing::info!("SIGINT received, shutting down"),
        () = terminate => tracing::info!("SIGTERM received, shutting down"),
    }
}
