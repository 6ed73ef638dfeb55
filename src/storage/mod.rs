//! Persistence of token metadata and digests through sea-orm, on SQLite or
//! PostgreSQL.

pub mod connect;
pub mod entity;
pub mod error;
pub mod listener;
pub mod store;

pub use connect::{Engine, connect};
pub use error::StoreError;
pub use store::{ListQuery, NewToken, RevokeOutcome, TokenStore};
