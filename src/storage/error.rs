//! Storage errors, split into "the database cannot be reached now" and
//! everything else.

use sea_orm::{DbErr, RuntimeErr, sqlx};

/// A storage failure. Variants keep the driver error for the server log;
/// the gRPC layer never sends its text to clients.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database is unreachable, locked, read-only or overloaded. Retrying
    /// later may succeed.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] DbErr),
    /// Any other database failure, such as a row that does not decode.
    #[error("database error: {0}")]
    Internal(#[source] DbErr),
    /// A stored value breaks an invariant that writes enforce.
    #[error("corrupt row for token {id}: {reason}")]
    Corrupt {
        /// Id of the row.
        id: uuid::Uuid,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl From<DbErr> for StoreError {
    fn from(error: DbErr) -> Self {
        if is_unavailable(&error) {
            Self::Unavailable(error)
        } else {
            Self::Internal(error)
        }
    }
}

/// Decides whether a driver error means the database cannot serve now, as
/// opposed to a bug or bad data.
fn is_unavailable(error: &DbErr) -> bool {
    match error {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(inner)) | DbErr::Query(RuntimeErr::SqlxError(inner)) => {
            is_unavailable_sqlx(inner)
        }
        _ => false,
    }
}

fn is_unavailable_sqlx(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(database) => database
            .code()
            .is_some_and(|code| is_unavailable_code(&code)),
        _ => false,
    }
}

/// Error codes that mean "not now" rather than "never".
///
/// SQLite primary result codes: 5 busy, 6 locked, 8 read-only, 10 I/O error,
/// 13 disk full, 14 cannot open. Extended codes keep the primary code in the
/// low byte. PostgreSQL SQLSTATE classes: 08 connection exception, 53
/// insufficient resources, 57P0x operator intervention (shutdown, crash).
fn is_unavailable_code(code: &str) -> bool {
    // A SQLSTATE always has five characters, and SQLite's extended codes
    // stay below 10,000, so the length tells the engines apart.
    if code.len() == 5 {
        return code.starts_with("08") || code.starts_with("53") || code.starts_with("57P");
    }
    code.parse::<i64>()
        .is_ok_and(|number| matches!(number & 0xff, 5 | 6 | 8 | 10 | 13 | 14))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_busy_codes_are_unavailable() {
        assert!(is_unavailable_code("5"));
        assert!(is_unavailable_code("517"));
        assert!(is_unavailable_code("8"));
        assert!(!is_unavailable_code("2067"));
        assert!(!is_unavailable_code("1"));
    }

    #[test]
    fn postgres_connection_codes_are_unavailable() {
        assert!(is_unavailable_code("08006"));
        assert!(is_unavailable_code("57P01"));
        assert!(is_unavailable_code("53300"));
        assert!(!is_unavailable_code("23505"));
        assert!(!is_unavailable_code("42P01"));
    }

    #[test]
    fn pool_timeout_is_unavailable() {
        assert!(is_unavailable(&DbErr::ConnectionAcquire(
            sea_orm::error::ConnAcquireErr::Timeout
        )));
        assert!(!is_unavailable(&DbErr::Type("bad".to_owned())));
    }
}
