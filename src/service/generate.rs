//! Generate: create a token and return its secret once.

use uuid::Uuid;

use super::{Caller, Permission, ServiceError, TokenManager};
use crate::{
    domain::{Expiration, Owner, ScopeSet, Secret, Timestamp, TokenName, TokenRecord, scope},
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

        let cap = self.policy.max_active_per_owner;
        let (row, generated) = self.prepare(owner, name, scopes, now, expires_at)?;
        if !self.store.insert_capped(&row, cap).await? {
            // The count is read again only for the message; the decision
            // was made atomically with the insert.
            let owner = &generated.record.owner;
            let active = self.store.count_active(owner, now).await?;
            return Err(ServiceError::FailedPrecondition(format!(
                "owner {owner} has {active} active tokens; the limit is {cap}; revoke tokens that are no longer used"
            )));
        }
        Ok(generated)
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
        now: Timestamp,
        expires_at: Option<Timestamp>,
    ) -> Result<Generated, ServiceError> {
        let (row, generated) = self.prepare(owner, name, scopes, now, expires_at)?;
        self.store.insert(&row).await?;
        Ok(generated)
    }

    /// Writes `count` tokens for `owner` in one statement, for seeding load
    /// tests without one RPC per token.
    ///
    /// # Errors
    ///
    /// Returns [`ServiceError::Unavailable`] or [`ServiceError::Internal`];
    /// nothing of the batch is written then.
    pub async fn create_batch(
        &self,
        owner: &Owner,
        name: &TokenName,
        count: usize,
        now: Timestamp,
        expires_at: Option<Timestamp>,
    ) -> Result<Vec<Generated>, ServiceError> {
        let mut rows = Vec::with_capacity(count);
        let mut generated = Vec::with_capacity(count);
        for _ in 0..count {
            let (row, token) = self.prepare(
                owner.clone(),
                name.clone(),
                ScopeSet::default(),
                now,
                expires_at,
            )?;
            rows.push(row);
            generated.push(token);
        }
        self.store.insert_many(&rows).await?;
        Ok(generated)
    }

    /// Builds the row and the secret of a new token without writing it.
    fn prepare(
        &self,
        owner: Owner,
        name: TokenName,
        scopes: ScopeSet,
        now: Timestamp,
        expires_at: Option<Timestamp>,
    ) -> Result<(NewToken, Generated), ServiceError> {
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
        let row = NewToken {
            record: record.clone(),
            digest,
        };
        Ok((row, Generated { record, secret }))
    }

    /// Rejects scopes outside the configured allow-list. Reserved scopes are
    /// always allowed.
    ///
    /// # Errors
    ///
    /// Returns [`ServiceError::InvalidArgument`] naming the first such scope.
    pub fn check_allowed(&self, scopes: &ScopeSet) -> Result<(), ServiceError> {
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
