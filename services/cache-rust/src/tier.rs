//! The seam between the cache and its storage tiers. L1 (moka) implements it today; an L2
//! (Redis) implements the same trait and is handed to [`crate::cache::Cache::new`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;

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
    pub fn new(value: impl Into<Arc<[u8]>>, ttl: Duration) -> Self {
        Self {
            value: value.into(),
            expires_at: Instant::now() + ttl,
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
#[derive(Debug, thiserror::Error)]
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
}
