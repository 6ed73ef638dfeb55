//! Revoke: end a token's access, idempotently.

use uuid::Uuid;

use super::{Caller, Permission, ServiceError, TokenManager};
use crate::{domain::TokenRecord, storage::RevokeOutcome};

impl TokenManager {
    /// Revokes the token `id`. A non-admin reaches only its own owner's
    /// tokens; any other id is reported as not found, so existence never leaks.
    ///
    /// # Errors
    ///
    /// Returns [`ServiceError::InvalidArgument`] for an id that is not a
    /// UUID, [`ServiceError::NotFound`], and [`ServiceError::Unavailable`]
    /// when the database cannot be reached.
    pub async fn revoke(&self, caller: &Caller, id: &str) -> Result<TokenRecord, ServiceError> {
        caller.require(Permission::Manage, "Revoke")?;

        let parsed = Uuid::try_parse(id.trim()).map_err(|_| {
            ServiceError::invalid("id", format!("id {:?} is not a UUID", shorten(id)))
        })?;
        let owner = (!caller.is_admin()).then(|| caller.owner().clone());

        match self
            .store
            .revoke(parsed, owner.as_ref(), self.clock.now())
            .await?
        {
            RevokeOutcome::Revoked(record) | RevokeOutcome::AlreadyRevoked(record) => Ok(record),
            RevokeOutcome::NotFound => Err(ServiceError::NotFound(parsed.to_string())),
        }
    }
}

/// Keeps an invalid id short enough for an error message.
fn shorten(id: &str) -> String {
    id.chars().take(40).collect()
}
