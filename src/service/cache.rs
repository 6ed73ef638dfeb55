//! The in-process cache of Validate lookups, keyed by digest.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use moka::{Expiry, sync::Cache};

use crate::domain::{Digest, TokenRecord};

/// Cache sizes and lifetimes.
#[derive(Debug, Clone, Copy)]
pub struct CacheSettings {
    /// Maximum entries; 0 turns the cache off.
    pub capacity: u64,
    /// Lifetime of an entry for a known token. It bounds how long another
    /// replica may serve a revoked token when a revocation notice is lost.
    pub ttl: Duration,
    /// Lifetime of an entry for an unknown digest.
    pub negative_ttl: Duration,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            capacity: 100_000,
            ttl: Duration::from_secs(10),
            negative_ttl: Duration::from_secs(2),
        }
    }
}

/// Cached result of one digest lookup.
#[derive(Debug, Clone)]
pub enum CachedLookup {
    /// The token's record as the database returned it.
    Known(Arc<TokenRecord>),
    /// No token has this digest.
    Unknown,
}

/// Gives unknown digests a shorter lifetime than known tokens.
struct LookupExpiry {
    ttl: Duration,
    negative_ttl: Duration,
}

impl Expiry<Digest, CachedLookup> for LookupExpiry {
    fn expire_after_create(
        &self,
        _key: &Digest,
        value: &CachedLookup,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(match value {
            CachedLookup::Known(_) => self.ttl,
            CachedLookup::Unknown => self.negative_ttl,
        })
    }
}

/// A bounded cache of lookups with an invalidation epoch.
///
/// A lookup that misses reads the epoch before it queries the database and
/// stores its result only if no invalidation happened meanwhile. Without
/// this, a Validate that read a token just before a concurrent Revoke could
/// put the stale "active" record back after the Revoke evicted it.
pub struct TokenCache {
    entries: Option<Cache<Digest, CachedLookup>>,
    epoch: AtomicU64,
}

impl TokenCache {
    /// Creates a cache; a capacity of 0 gives a cache that stores nothing.
    pub fn new(settings: CacheSettings) -> Self {
        let entries = (settings.capacity > 0).then(|| {
            Cache::builder()
                .max_capacity(settings.capacity)
                .expire_after(LookupExpiry {
                    ttl: settings.ttl,
                    negative_ttl: settings.negative_ttl,
                })
                .build()
        });
        Self {
            entries,
            epoch: AtomicU64::new(0),
        }
    }

    /// Returns the cached lookup for `digest`.
    pub fn get(&self, digest: &Digest) -> Option<CachedLookup> {
        self.entries.as_ref()?.get(digest)
    }

    /// Returns the current epoch, to pass to [`TokenCache::insert`] after the database read.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Stores a lookup unless an invalidation happened since `epoch` was read.
    pub fn insert(&self, digest: Digest, lookup: CachedLookup, epoch: u64) {
        let Some(entries) = &self.entries else {
            return;
        };
        if self.epoch() != epoch {
            return;
        }
        entries.insert(digest.clone(), lookup);
        // An invalidation may have run between the check and the insert; the
        // entry is dropped again so that it cannot outlive the invalidation.
        if self.epoch() != epoch {
            entries.invalidate(&digest);
        }
    }

    /// Evicts one digest.
    pub fn invalidate(&self, digest: &Digest) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        if let Some(entries) = &self.entries {
            entries.invalidate(digest);
        }
    }

    /// Evicts everything, for when revocation notices may have been lost.
    pub fn invalidate_all(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        if let Some(entries) = &self.entries {
            entries.invalidate_all();
        }
    }

    /// Returns the number of entries after applying pending evictions. It
    /// does housekeeping work, so call it from background sampling only.
    pub fn len(&self) -> u64 {
        let Some(entries) = &self.entries else {
            return 0;
        };
        entries.run_pending_tasks();
        entries.entry_count()
    }

    /// Returns whether the cache is empty, approximately.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("enabled", &self.entries.is_some())
            .field("entries", &self.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(byte: u8) -> Digest {
        Digest::from_bytes([byte; 32])
    }

    #[test]
    fn insert_after_invalidation_is_dropped() {
        let cache = TokenCache::new(CacheSettings::default());
        let epoch = cache.epoch();
        cache.invalidate(&digest(1));
        cache.insert(digest(1), CachedLookup::Unknown, epoch);
        assert!(cache.get(&digest(1)).is_none());
    }

    #[test]
    fn insert_without_invalidation_is_kept() {
        let cache = TokenCache::new(CacheSettings::default());
        cache.insert(digest(2), CachedLookup::Unknown, cache.epoch());
        assert!(matches!(cache.get(&digest(2)), Some(CachedLookup::Unknown)));
        cache.invalidate(&digest(2));
        assert!(cache.get(&digest(2)).is_none());
    }

    #[test]
    fn zero_capacity_stores_nothing() {
        let cache = TokenCache::new(CacheSettings {
            capacity: 0,
            ..CacheSettings::default()
        });
        cache.insert(digest(3), CachedLookup::Unknown, cache.epoch());
        assert!(cache.get(&digest(3)).is_none());
    }
}
