//! The Validate path, shared by the Validate RPC and caller authentication.

use super::{Caller, Permission, ServiceError, TokenManager};
use crate::domain::{Malformed, ScopeSet, TokenRecord, TokenStatus};

/// The answer for one token. A bad token is an outcome, not an error.
#[derive(Debug, Clone)]
pub enum ValidateOutcome {
    /// Active and holding every required scope.
    Valid(TokenRecord),
    /// Not a well-formed token; no hashing or I/O happened.
    Malformed(Malformed),
    /// No token has this secret.
    NotFound,
    /// The token has expired.
    Expired(TokenRecord),
    /// The token was revoked.
    Revoked(TokenRecord),
    /// Active but missing a required scope.
    InsufficientScope(TokenRecord),
}

impl TokenManager {
    /// Validates `raw` for a caller allowed to call Validate.
    ///
    /// # Errors
    ///
    /// Returns [`ServiceError::PermissionDenied`] when the caller may not
    /// validate, [`ServiceError::InvalidArgument`] for invalid required
    /// scopes, and [`ServiceError::Unavailable`] when the database cannot be
    /// reached. It never guesses an outcome.
    pub async fn validate(
        &self,
        caller: &Caller,
        raw: &str,
        required_scopes: &[String],
    ) -> Result<ValidateOutcome, ServiceError> {
        caller.require(Permission::Validate, "Validate")?;
        let required = ScopeSet::parse(required_scopes)
            .map_err(|error| ServiceError::invalid("required_scopes", error.to_string()))?;
        self.check(raw, &required).await
    }

    /// Parses, hashes, looks up and judges one token, and records the use
    /// when it is valid.
    pub(super) async fn check(
        &self,
        raw: &str,
        required: &ScopeSet,
    ) -> Result<ValidateOutcome, ServiceError> {
        let token = match self.format.parse(raw) {
            Ok(token) => token,
            Err(malformed) => return Ok(ValidateOutcome::Malformed(malformed)),
        };

        let digest = self.hasher.digest(token);
        let Some(record) = self.store.find_by_digest(&digest).await? else {
            return Ok(ValidateOutcome::NotFound);
        };

        let now = self.clock.now();
        match record.status(now) {
            TokenStatus::Revoked => return Ok(ValidateOutcome::Revoked(record)),
            TokenStatus::Expired => return Ok(ValidateOutcome::Expired(record)),
            TokenStatus::Active => {}
        }
        if !record.scopes.is_superset(required) {
            return Ok(ValidateOutcome::InsufficientScope(record));
        }

        // The answer is already known, so a failed last-used write is logged
        // and does not turn a valid token into an error.
        if let Err(error) = self.store.record_use(record.id, now).await {
            tracing::warn!(token_id = %record.id, error = %error, "failed to record token use");
        }
        Ok(ValidateOutcome::Valid(record))
    }
}
