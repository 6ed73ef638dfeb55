//! Caller authentication and the permission rules of the reserved scopes.

use std::sync::Arc;

use super::{ServiceError, TokenManager, ValidateOutcome};
use crate::domain::{Owner, ScopeSet, TokenRecord, scope};

/// An authenticated caller: the metadata of the token it presented.
#[derive(Debug, Clone)]
pub struct Caller {
    record: Arc<TokenRecord>,
}

/// Kind of operation, for the coarse permission check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Generate, List or Revoke tokens.
    Manage,
    /// Validate tokens.
    Validate,
}

impl Caller {
    /// Returns the caller's owner.
    pub fn owner(&self) -> &Owner {
        &self.record.owner
    }

    /// Returns the caller's token id, for logs.
    pub fn token_id(&self) -> uuid::Uuid {
        self.record.id
    }

    /// Returns the caller's scopes.
    pub fn scopes(&self) -> &ScopeSet {
        &self.record.scopes
    }

    /// Returns whether the caller holds `tokens:admin`.
    pub fn is_admin(&self) -> bool {
        self.record.scopes.contains(scope::ADMIN)
    }

    /// Checks that the caller's reserved scopes allow `permission`.
    ///
    /// # Errors
    ///
    /// Returns [`ServiceError::PermissionDenied`] naming the scopes that would allow it.
    pub fn require(&self, permission: Permission, method: &str) -> Result<(), ServiceError> {
        let allowing = match permission {
            Permission::Manage => scope::SELF,
            Permission::Validate => scope::VALIDATE,
        };
        if self.is_admin() || self.record.scopes.contains(allowing) {
            return Ok(());
        }
        Err(ServiceError::PermissionDenied(format!(
            "{method} requires scope {} or {allowing} on the caller's token",
            scope::ADMIN
        )))
    }

    /// Resolves the owner a request names. Empty means the caller's own;
    /// only an admin may name another owner.
    ///
    /// # Errors
    ///
    /// Returns [`ServiceError::InvalidArgument`] for a malformed owner and
    /// [`ServiceError::PermissionDenied`] for another owner without admin.
    pub fn resolve_owner(&self, requested: &str) -> Result<Owner, ServiceError> {
        if requested.is_empty() {
            return Ok(self.record.owner.clone());
        }
        let owner = Owner::parse(requested)
            .map_err(|error| ServiceError::invalid("owner", error.to_string()))?;
        if owner != self.record.owner && !self.is_admin() {
            return Err(ServiceError::PermissionDenied(format!(
                "only a caller with scope {} may act for another owner",
                scope::ADMIN
            )));
        }
        Ok(owner)
    }
}

impl TokenManager {
    /// Authenticates the value of the caller's `authorization` metadata with
    /// the same parser and lookup as Validate.
    ///
    /// # Errors
    ///
    /// Returns [`ServiceError::Unauthenticated`] for a missing, malformed,
    /// unknown, expired or revoked token, and [`ServiceError::Unavailable`]
    /// when the database cannot be reached.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Caller, ServiceError> {
        let Some(authorization) = authorization else {
            return Err(ServiceError::Unauthenticated(
                "missing authorization metadata: send 'authorization: Bearer <token>'".to_owned(),
            ));
        };
        let reason = match self.check(authorization, &ScopeSet::default()).await? {
            ValidateOutcome::Valid(record) => return Ok(Caller { record }),
            ValidateOutcome::Malformed(malformed) => {
                format!("the caller's token is malformed: {malformed}")
            }
            ValidateOutcome::NotFound => "the caller's token is not valid".to_owned(),
            ValidateOutcome::Expired(_) => "the caller's token has expired".to_owned(),
            ValidateOutcome::Revoked(_) => "the caller's token was revoked".to_owned(),
            // No scopes were required above, so this arm is never reached.
            ValidateOutcome::InsufficientScope(_) => "the caller's token is not valid".to_owned(),
        };
        Err(ServiceError::Unauthenticated(reason))
    }
}
