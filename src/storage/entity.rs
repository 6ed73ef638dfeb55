//! The `tokens` table as a sea-orm entity. Times are microseconds since the
//! Unix epoch in UTC.

use std::fmt;

use sea_orm::entity::prelude::*;

/// One row of `tokens`.
#[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "tokens")]
pub struct Model {
    /// UUIDv7 id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Owner id.
    pub owner: String,
    /// Name, trimmed.
    pub name: String,
    /// Keyed BLAKE3 digest of the secret, 32 bytes, unique.
    #[sea_orm(unique)]
    pub digest: Vec<u8>,
    /// Prefix and last four characters of the secret.
    pub display_hint: String,
    /// Scopes separated by single spaces, sorted.
    pub scopes: String,
    /// Creation time.
    pub created_at: i64,
    /// Expiry time; null means never.
    pub expires_at: Option<i64>,
    /// Last successful validation; null means never used.
    pub last_used_at: Option<i64>,
    /// Revocation time; null means not revoked.
    pub revoked_at: Option<i64>,
}

// Written by hand so that the digest never reaches a log through `{:?}`.
impl fmt::Debug for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Model")
            .field("id", &self.id)
            .field("owner", &self.owner)
            .field("name", &self.name)
            .field("digest", &"<redacted>")
            .field("display_hint", &self.display_hint)
            .field("scopes", &self.scopes)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .field("last_used_at", &self.last_used_at)
            .field("revoked_at", &self.revoked_at)
            .finish()
    }
}

/// The table has no relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
