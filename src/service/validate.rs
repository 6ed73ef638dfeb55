//! The Validate path, shared by the Validate RPC and caller authentication.

use std::sync::Arc;

use super::{Caller, Permission, ServiceError, TokenManager, cache::CachedLookup};
use crate::domain::{Digest, Malformed, ScopeSet, TokenRecord, TokenStatus};

/// Result of validating one token. A bad token is a result, not an error.
///
/// Records are shared with the cache rather than copied, so a cache hit
/// allocates nothing.
#[derive(Debug, Clone)]
pub enum ValidateOutcome {
    /// Active and holding every required scope.
    Valid(Arc<TokenRecord>),
    /// Not a well-formed token; no hashing or I/O happened.
    Malformed(Malformed),
    /// No token has this secret.
    NotFound,
    /// The token has expired.
    Expired(Arc<TokenRecord>),
    /// The token was revoked.
    Revoked(Arc<TokenRecord>),
    /// Active but missing a required scope.
    InsufficientScope(Arc<TokenRecord>),
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

    /// Parses, hashes, looks up and judges one token, and notes the use in
    /// memory when it is valid.
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
        let Some(record) = self.lookup(digest, token).await? else {
            return Ok(ValidateOutcome::NotFound);
        };

        // Status is derived from the clock on every call, so a cached
        // record never extends a token's life.
        let now = self.clock.now();
        match record.status(now) {
            TokenStatus::Revoked => return Ok(ValidateOutcome::Revoked(record)),
            TokenStatus::Expired => return Ok(ValidateOutcome::Expired(record)),
            TokenStatus::Active => {}
        }
        if !record.scopes.is_superset(required) {
            return Ok(ValidateOutcome::InsufficientScope(record));
        }

        self.usage.record(record.id, now);
        Ok(ValidateOutcome::Valid(record))
    }
}

impl TokenManager {
    /// Finds the record for `digest` in the cache, or in the database on a
    /// miss, remembering unknown digests too.
    async fn lookup(
        &self,
        digest: Digest,
        token: &str,
    ) -> Result<Option<Arc<TokenRecord>>, ServiceError> {
        match self.cache.get(&digest) {
            Some(CachedLookup::Known(record)) => {
                crate::metrics::cache_lookup(true);
                return Ok(Some(record));
            }
            Some(CachedLookup::Unknown) => {
                crate::metrics::cache_lookup(true);
                return Ok(None);
            }
            None => crate::metrics::cache_lookup(false),
        }

        let epoch = self.cache.epoch();
        let mut found = self.store.find_by_digest(&digest).await?;
        if found.is_none() {
            found = self.lookup_previous(&digest, token).await?;
        }
        let found = found.map(Arc::new);
        let cached = match &found {
            Some(record) => CachedLookup::Known(Arc::clone(record)),
            None => CachedLookup::Unknown,
        };
        self.cache.insert(digest, cached, epoch);
        Ok(found)
    }

    /// Looks the token up under each previous hashing key and, when found,
    /// stores its digest under the current key so the next lookup is direct.
    async fn lookup_previous(
        &self,
        current: &Digest,
        token: &str,
    ) -> Result<Option<TokenRecord>, ServiceError> {
        for old in self.hasher.previous_digests(token) {
            let Some(record) = self.store.find_by_digest(&old).await? else {
                continue;
            };
            self.store.replace_digest(record.id, &old, current).await?;
            metrics::counter!(crate::metrics::REHASHED_TOKENS).increment(1);
            tracing::info!(token_id = %record.id, "re-hashed a token under the current hashing key");
            return Ok(Some(record));
        }
        Ok(None)
    }
}
