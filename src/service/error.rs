//! Errors of the token operations, each carrying the ids and values a
//! caller may see, never a secret.

use crate::storage::StoreError;

/// Failure of a token operation.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The caller's credential is missing or not valid.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller is authenticated but may not do this.
    #[error("{0}")]
    PermissionDenied(String),
    /// A request field is invalid.
    #[error("invalid {field}: {message}")]
    InvalidArgument {
        /// The request field, as named in the proto.
        field: &'static str,
        /// What is wrong, with the value where it is not secret and the limit.
        message: String,
    },
    /// The request is valid but the system's state forbids it, such as an
    /// owner at the cap of active tokens.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The token does not exist or belongs to another owner.
    #[error("token {0} not found")]
    NotFound(String),
    /// The database cannot be reached; retrying later may succeed.
    #[error("the token database is unavailable, try again later")]
    Unavailable(#[source] StoreError),
    /// A fault in the server, logged in full and reported generically.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ServiceError {
    /// Builds an [`ServiceError::InvalidArgument`] for `field`.
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field,
            message: message.into(),
        }
    }
}

impl From<StoreError> for ServiceError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(_) => Self::Unavailable(error),
            StoreError::Internal(_) | StoreError::Corrupt { .. } => Self::Internal(error.into()),
        }
    }
}
