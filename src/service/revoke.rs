//! Revoke: end a token's access, idempotently.

use uuid::Uuid;

use super::{Caller, Permission, ServiceError, TokenManager};
use crate::{domain::TokenRecord, storage::RevokeOutcome};

/// The result of a Revoke call.
#[derive(Debug, Clone)]
pub struct Revocation {
    /// The token as stored after the call.
    pub record: TokenRecord,
    /// Whether an earlier call had revoked it; `revoked_at` is then that
    /// call's time.
    pub already_revoked: bool,
}

impl TokenManager {
    /// Revokes the token `id`. A non-admin reaches only its own owner's
    /// tokens; any other id is reported as not found, so existence never leaks.
    ///
    /// # Errors
    ///
    /// Returns [`ServiceError::InvalidArgument`] for an id that is not a
    /// UUID, [`ServiceError::NotFound`], and [`ServiceError::Unavailable`]
    /// when the database cannot be reached.
    pub async fn revoke(&self, caller: &Caller, id: &str) -> Result<Revocation, ServiceError> {
        caller.require(Permission::Manage, "Revoke")?;

        let parsed = Uuid::try_parse(id.trim()).map_err(|_| {
            ServiceError::invalid("id", format!("id {:?} is not a UUID", shorten(id)))
        })?;
        let owner = (!caller.is_admin()).then(|| caller.owner().clone());

        let outcome = self
            .store
            .revoke(parsed, owner.as_ref(), self.clock.now())
            .await?;
        let (record, digest, already_revoked) = match outcome {
            RevokeOutcome::Revoked(record, digest) => (record, digest, false),
            RevokeOutcome::AlreadyRevoked(record, digest) => (record, digest, true),
            RevokeOutcome::NotFound => return Err(ServiceError::NotFound(parsed.to_string())),
        };

        // The local cache is cleared before Revoke returns, so this replica
        // returns REVOKED on the very next call. A stored digest of the wrong
        // length cannot be a cache key, but the whole cache is cleared rather
        // than risk keeping a stale entry.
        match digest {
            Some(digest) => self.cache.invalidate(&digest),
            None => self.cache.invalidate_all(),
        }
        if let Err(error) = self.store.notify_revoked(parsed).await {
            // Other replicas still drop the token when their cache entry expires.
            tracing::error!(token_id = %parsed, %error, "failed to notify other replicas of a revocation");
        }
        Ok(Revocation {
            record,
            already_revoked,
        })
    }

    /// Evicts token `id` from this replica's cache. When the digest cannot be
    /// read, the whole cache is cleared rather than risk a stale entry.
    pub async fn evict(&self, id: Uuid) {
        match self.store.find_digest(id).await {
            Ok(Some(digest)) => self.cache.invalidate(&digest),
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(token_id = %id, %error, "failed to read a digest for eviction; clearing the cache");
                self.cache.invalidate_all();
            }
        }
    }
}

/// Keeps an invalid id short enough for an error message.
fn shorten(id: &str) -> String {
    id.chars().take(40).collect()
}
