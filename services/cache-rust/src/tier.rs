//! The seam between the cache and its storage tiers: L1 (moka, [`crate::l1`]) and L2 (Redis,
//! [`crate::l2`]) implement the same trait; [`crate::cache::Cache`] stacks them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::FutureExt;

/// The longest TTL an entry may have (longer requests are rejected, longer defaults clamped).
pub const MAX_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

/// A namespaced key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    pub namespace: String,
    pub key: String,
}

impl CacheKey {
    pub fn new(namespace: impl Into<String>, key: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            key: key.into(),
        }
    }
}

/// A cached value and when it expires.
#[derive(Debug, Clone)]
pub struct Entry {
    pub value: Arc<[u8]>,
    pub expires_at: Instant,
}

impl Entry {
    /// `ttl` is clamped to [`MAX_TTL`].
    pub fn new(value: impl Into<Arc<[u8]>>, ttl: Duration) -> Self {
        Self {
            value: value.into(),
            expires_at: Instant::now() + ttl.min(MAX_TTL),
        }
    }

    /// Time left to live (zero once expired).
    pub fn remaining_ttl(&self) -> Duration {
        self.expires_at.saturating_duration_since(Instant::now())
    }

    pub fn is_expired(&self) -> bool {
        self.expires_at <= Instant::now()
    }
}

/// Which tier answered a lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TierKind {
    L1,
    L2,
}

/// Why a tier could not answer (a remote tier's connection error, say).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{tier:?} unavailable: {message}")]
pub struct TierError {
    pub tier: TierKind,
    pub message: String,
}

/// One storage tier. Expired entries are never returned.
pub trait Tier: Send + Sync + 'static {
    fn kind(&self) -> TierKind;
    fn get<'a>(&'a self, key: &'a CacheKey) -> BoxFuture<'a, Result<Option<Entry>, TierError>>;
    fn set(&self, key: CacheKey, entry: Entry) -> BoxFuture<'_, Result<(), TierError>>;
    /// Whether a live entry was removed.
    fn delete<'a>(&'a self, key: &'a CacheKey) -> BoxFuture<'a, Result<bool, TierError>>;

    /// One answer per key, in order. Remote tiers override this with one round trip.
    fn get_many<'a>(
        &'a self,
        keys: &'a [CacheKey],
    ) -> BoxFuture<'a, Result<Vec<Option<Entry>>, TierError>> {
        async move {
            let mut found = Vec::with_capacity(keys.len());
            for key in keys {
                found.push(self.get(key).await?);
            }
            Ok(found)
        }
        .boxed()
    }

    /// Stores every entry. Remote tiers override this with one round trip.
    fn set_many(&self, entries: Vec<(CacheKey, Entry)>) -> BoxFuture<'_, Result<(), TierError>> {
        async move {
            for (key, entry) in entries {
                self.set(key, entry).await?;
            }
            Ok(())
        }
        .boxed()
    }

    /// Whether the tier is reachable (for readiness). Local tiers always are.
    fn ping(&self) -> BoxFuture<'_, Result<(), TierError>> {
        async { Ok(()) }.boxed()
    }
}
