//! Token rules with no I/O: format, hashing, names, owners, scopes, lifetimes
//! and status.

pub mod clock;
pub mod digest;
pub mod lifetime;
pub mod name;
pub mod owner;
pub mod record;
pub mod scope;
pub mod secret;
pub mod status;
pub mod time;
pub mod token_format;

pub use clock::{Clock, ManualClock, SystemClock};
pub use digest::{Digest, HashingKey, TokenHasher};
pub use lifetime::{Expiration, LifetimeError, LifetimePolicy};
pub use name::{NameError, TokenName};
pub use owner::{Owner, OwnerError};
pub use record::TokenRecord;
pub use scope::{Scope, ScopeError, ScopeSet};
pub use secret::Secret;
pub use status::TokenStatus;
pub use time::Timestamp;
pub use token_format::{Malformed, TokenFormat};
