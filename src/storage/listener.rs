//! Revocation notices from other replicas through PostgreSQL LISTEN.

use std::time::Duration;

use sea_orm::sqlx::postgres::PgListener;
use uuid::Uuid;

use super::{Engine, TokenStore, store::REVOCATION_CHANNEL};

/// Listens for revoked token ids and calls `on_revoked` for each one.
///
/// Every time the listening connection is (re)established, `on_reconnect`
/// runs first, because notices sent while it was down are lost. Returns at
/// once on SQLite. Runs until the task is aborted.
pub async fn listen_revocations(
    store: TokenStore,
    on_revoked: impl Fn(Uuid) + Send,
    on_reconnect: impl Fn() + Send,
) {
    if store.engine() != Engine::Postgres {
        return;
    }
    let pool = store.connection().get_postgres_connection_pool().clone();
    loop {
        // try_recv() reports a lost connection instead of hiding the
        // reconnect, so the cache can be cleared of entries whose notices were lost.
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%error, "failed to open the revocation listener; retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(error) = listener.listen(REVOCATION_CHANNEL).await {
            tracing::warn!(%error, "failed to LISTEN for revocations; retrying in 1 s");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        tracing::info!("listening for revocations from other replicas");
        on_reconnect();

        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => match Uuid::try_parse(notification.payload()) {
                    Ok(id) => on_revoked(id),
                    Err(_) => tracing::warn!(
                        "ignored a revocation notice whose payload is not a token id"
                    ),
                },
                Ok(None) => {
                    tracing::warn!("revocation listener connection lost; reconnecting");
                    break;
                }
                Err(error) => {
                    tracing::warn!(%error, "revocation listener failed; reconnecting");
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
