//! A stored token's metadata.

use uuid::Uuid;

use super::{Owner, ScopeSet, Timestamp, TokenStatus};

/// Everything stored about a token except its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// Unique id, a UUIDv7.
    pub id: Uuid,
    /// The owner.
    pub owner: Owner,
    /// The validated name.
    pub name: String,
    /// The granted scopes.
    pub scopes: ScopeSet,
    /// Prefix and last four characters of the secret.
    pub display_hint: String,
    /// Creation time.
    pub created_at: Timestamp,
    /// Expiry time; `None` means never.
    pub expires_at: Option<Timestamp>,
    /// Time of the last successful validation; `None` means never used.
    pub last_used_at: Option<Timestamp>,
    /// Revocation time; `None` means not revoked.
    pub revoked_at: Option<Timestamp>,
}

impl TokenRecord {
    /// Derives the status at `now`.
    pub fn status(&self, now: Timestamp) -> TokenStatus {
        TokenStatus::at(now, self.expires_at, self.revoked_at)
    }
}
