//! Opening the database pool with settings for each engine.

use std::time::Duration;

use sea_orm::{
    ConnectOptions, Database, DbBackend, DbErr,
    sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous},
};

use super::TokenStore;

/// The database engine behind a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// An embedded SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// Pool settings shared by both engines.
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    /// Maximum open connections.
    pub max_connections: u32,
    /// How long a call waits for a connection before it fails as unavailable.
    pub acquire_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(3),
        }
    }
}

/// Page cache per SQLite connection, in KiB.
const SQLITE_PAGE_CACHE_KIB: u32 = 256;

/// Opens a pool on `url` (`sqlite://…` or `postgres://…`).
///
/// SQLite runs in WAL mode so readers never wait for the writer, with
/// `synchronous=FULL` so a Generate or Revoke that returned OK survives a
/// power loss, and a busy timeout so short write bursts queue instead of
/// failing.
///
/// # Errors
///
/// Returns the driver error when the database cannot be opened.
pub async fn connect(url: &str, pool: PoolSettings) -> Result<TokenStore, DbErr> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(pool.max_connections)
        .min_connections(1)
        .connect_timeout(pool.acquire_timeout)
        .acquire_timeout(pool.acquire_timeout)
        // A ping on every checkout is one more round trip per cache miss, so
        // only connections idle long enough for a server or a proxy to have
        // dropped them are pinged. A busy connection that broke fails its
        // query, which returns UNAVAILABLE, and the pool replaces it.
        .test_before_acquire_if_idle_for(Duration::from_secs(10))
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|sqlite| {
            sqlite
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(5))
                // Each pooled connection keeps its own page cache, 2 MiB by
                // default, so sixteen connections would hold 32 MiB of
                // copies of the same index pages. The operating system's
                // file cache serves the pages that do not fit, at the cost
                // of a read call on a cache miss.
                .pragma("cache_size", format!("-{SQLITE_PAGE_CACHE_KIB}"))
                .create_if_missing(true)
        });
    let connection = Database::connect(options).await?;

    let engine = match connection.get_database_backend() {
        DbBackend::Sqlite => Engine::Sqlite,
        DbBackend::Postgres => Engine::Postgres,
        other => {
            return Err(DbErr::Custom(format!(
                "unsupported database backend {other:?}; use sqlite:// or postgres://"
            )));
        }
    };
    Ok(TokenStore::new(connection, engine))
}
