//! The token operations behind the RPCs: authentication of the caller,
//! permission checks and the four operations. No gRPC types appear here.

mod auth;
pub mod cache;
mod error;
mod generate;
mod list;
mod page_token;
mod revoke;
pub mod usage;
mod validate;

use std::{collections::BTreeSet, sync::Arc};

pub use auth::{Caller, Permission};
pub use cache::CacheSettings;
pub use error::ServiceError;
pub use generate::{GenerateInput, Generated};
pub use list::{ListInput, ListPage};
pub use revoke::Revocation;
pub use validate::ValidateOutcome;

use crate::{
    domain::{Clock, LifetimePolicy, TokenFormat, TokenHasher},
    storage::{StoreError, TokenStore},
};

/// Rules that configuration sets.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Default and maximum lifetimes.
    pub lifetime: LifetimePolicy,
    /// When set, only these scopes (and the reserved ones) may be granted.
    pub allowed_scopes: Option<BTreeSet<String>>,
    /// Maximum active tokens per owner; Generate fails beyond it.
    pub max_active_per_owner: u64,
}

/// The token operations, shared by every RPC handler.
#[derive(Clone)]
pub struct TokenManager {
    store: TokenStore,
    hasher: TokenHasher,
    format: TokenFormat,
    policy: Policy,
    clock: Arc<dyn Clock>,
    page_key: [u8; 32],
    cache: Arc<cache::TokenCache>,
    usage: Arc<usage::UsageRecorder>,
}

impl TokenManager {
    /// Creates the operations over `store` with a lookup cache of `cache` size.
    pub fn new(
        store: TokenStore,
        hasher: TokenHasher,
        format: TokenFormat,
        policy: Policy,
        clock: Arc<dyn Clock>,
        cache: CacheSettings,
    ) -> Self {
        let page_key = hasher.key().derive("tokend 2026-12 list page token");
        Self {
            store,
            hasher,
            format,
            policy,
            clock,
            page_key,
            cache: Arc::new(cache::TokenCache::new(cache)),
            usage: Arc::new(usage::UsageRecorder::default()),
        }
    }

    /// Writes pending last-used times in one batched statement.
    ///
    /// # Errors
    ///
    /// Returns the storage error; the pending uses are kept for the next try.
    pub async fn flush_usage(&self) -> Result<usize, StoreError> {
        self.usage.flush(&self.store).await
    }

    /// Returns the lookup cache, for revocation notices from other replicas.
    pub fn cache(&self) -> &cache::TokenCache {
        &self.cache
    }

    /// Returns the store, for health checks.
    pub fn store(&self) -> &TokenStore {
        &self.store
    }

    /// Returns the token format.
    pub fn format(&self) -> &TokenFormat {
        &self.format
    }
}

impl std::fmt::Debug for TokenManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenManager")
            .field("engine", &self.store.engine())
            .field("format", &self.format)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}
