//! Generate: create a token and return its secret once.

use uuid::Uuid;

use super::{Caller, Permission, ServiceError, TokenManager};
use crate::{
    domain::{Expiration, Owner, ScopeSet, Secret, TokenName, TokenRecord, scope},
    storage::NewToken,
};

/// A validated-on-use Generate request.
#[derive(Debug, Clone)]
pub struct GenerateInput {
    /// The requested name, untrimmed.
    pub name: String,
    /// The requested scopes.
    pub scopes: Vec<String>,
    /// The requested expiration.
    pub expiration: Expiration,
    /// The requested owner; empty means the caller's own.
    pub owner: String,
}

/// A new token and its secret.
#[derive(Debug)]
pub struct Generated {
    /// Metadata of the new token.
    pub record: TokenRecord,
    /// The secret, to return once.
    pub secret: Secret,
}

impl TokenManager {
    /// Creates a token for the caller, or for any owner when the caller is
    /// an admin.
    ///
    /// # Errors
    ///
    /// Returns [`ServiceError::InvalidArgument`] naming the first invalid
    /// field, [`ServiceError::PermissionDenied`] for another owner or a scope
    /// the caller lacks, and [`ServiceError::Unavailable`] when the database
    /// cannot be reached. Nothing is written on any error.
    pub async fn generate(
        &self,
        caller: &Caller,
        input: GenerateInput,
    ) -> Result<Generated, ServiceError> {
        caller.require(Permission::Manage, "Generate")?;

        let name = TokenName::parse(&input.name)
            .map_err(|error| ServiceError::invalid("name", error.to_string()))?;
        let scopes = ScopeSet::parse(&input.scopes)
            .map_err(|error| ServiceError::invalid("scopes", error.to_string()))?;
        self.check_allowed(&scopes)?;
        let owner = caller.resolve_owner(&input.owner)?;
        if !caller.is_admin() && !caller.scopes().is_superset(&scopes) {
            return Err(ServiceError::PermissionDenied(format!(
                "a new token may only hold scopes the caller holds; the caller lacks {}",
                caller.scopes().missing_from(&scopes).join(", ")
            )));
        }

        let now = self.clock.now();
        let expires_at = self
            .policy
            .lifetime
            .resolve(now, input.expiration)
            .map_err(|error| ServiceError::invalid("expiration", error.to_string()))?;

        self.create(owner, name, scopes, now, expires_at).await
    }

    /// Writes a token with already validated fields. The bootstrap command
    /// calls this directly, without a caller.
    ///
    /// # Errors
    ///
    /// Returns [`ServiceError::Unavailable`] or [`ServiceError::Internal`].
    pub async fn create(
        &self,
        owner: Owner,
        name: TokenName,
        scopes: ScopeSet,
        now: crate::domain::Timestamp,
        expires_at: Option<crate::domain::Timestamp>,
    ) -> Result<Generated, ServiceError> {
        let secret = self.format.generate().map_err(|error| {
            ServiceError::Internal(anyhow::anyhow!(
                "no randomness from the operating system: {error}"
            ))
        })?;
        let digest = self.hasher.digest(secret.expose());

        let (seconds, nanos) = now.to_unix();
        let uuid_time =
            uuid::Timestamp::from_unix(uuid::NoContext, seconds.max(0) as u64, nanos as u32);
        let record = TokenRecord {
            id: Uuid::new_v7(uuid_time),
            owner,
            name: name.into_string(),
            scopes,
            display_hint: self.format.display_hint(&secret),
            created_at: now,
            expires_at,
            last_used_at: None,
            revoked_at: None,
        };
        self.store
            .insert(&NewToken {
                record: record.clone(),
                digest,
            })
            .await?;
        Ok(Generated { record, secret })
    }

    /// Rejects scopes outside the configured allow-list. Reserved scopes are
    /// always allowed.
    fn check_allowed(&self, scopes: &ScopeSet) -> Result<(), ServiceError> {
        let Some(allowed) = &self.policy.allowed_scopes else {
            return Ok(());
        };
        let outside = scopes.iter().find(|s| {
            !allowed.contains(*s) && ![scope::ADMIN, scope::SELF, scope::VALIDATE].contains(s)
        });
        match outside {
            Some(scope) => Err(ServiceError::invalid(
                "scopes",
                format!("scope {scope:?} is not in the server's list of allowed scopes"),
            )),
            None => Ok(()),
        }
    }
}
