//! The token operations behind the RPCs: authentication of the caller,
//! permission checks and the four operations. No gRPC types appear here.

mod auth;
mod error;
mod generate;
mod list;
mod page_token;
mod revoke;
mod validate;

use std::{collections::BTreeSet, sync::Arc};

pub use auth::{Caller, Permission};
pub use error::ServiceError;
pub use generate::{GenerateInput, Generated};
pub use list::{ListInput, ListPage};
pub use validate::ValidateOutcome;

use crate::{
    domain::{Clock, LifetimePolicy, TokenFormat, TokenHasher},
    storage::TokenStore,
};

/// Rules that configuration sets.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Default and maximum lifetimes.
    pub lifetime: LifetimePolicy,
    /// When set, only these scopes (and the reserved ones) may be granted.
    pub allowed_scopes: Option<BTreeSet<String>>,
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
}

impl TokenManager {
    /// Creates the operations over `store`.
    pub fn new(
        store: TokenStore,
        hasher: TokenHasher,
        format: TokenFormat,
        policy: Policy,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let page_key = hasher.key().derive("tokend 2026-12 list page token");
        Self {
            store,
            hasher,
            format,
            policy,
            clock,
            page_key,
        }
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
