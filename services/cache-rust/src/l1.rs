//! The in-process tier: a moka cache bounded in bytes, with a TTL per entry.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::FutureExt;
use moka::future::Cache as MokaCache;
use moka::Expiry;

use crate::tier::{CacheKey, Entry, Tier, TierError, TierKind};

/// Bookkeeping bytes counted per entry beyond its key and value.
const ENTRY_OVERHEAD_BYTES: usize = 64;

#[derive(Debug, Clone)]
pub struct L1Config {
    pub max_bytes: u64,
    pub default_ttl: Duration,
    pub namespace_ttls: HashMap<String, Duration>,
}

#[derive(Clone)]
pub struct L1 {
    entries: MokaCache<CacheKey, Entry>,
    default_ttl: Duration,
    namespace_ttls: Arc<HashMap<String, Duration>>,
}

/// Expires each entry at its own `expires_at`, also when it is overwritten.
struct EntryExpiry;

impl Expiry<CacheKey, Entry> for EntryExpiry {
    fn expire_after_create(&self, _: &CacheKey, entry: &Entry, now: Instant) -> Option<Duration> {
        Some(entry.expires_at.saturating_duration_since(now))
    }

    fn expire_after_update(
        &self,
        _: &CacheKey,
        entry: &Entry,
        now: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(entry.expires_at.saturating_duration_since(now))
    }
}

impl L1 {
    pub fn new(config: L1Config) -> Self {
        let entries = MokaCache::builder()
            .max_capacity(config.max_bytes)
            .weigher(|key: &CacheKey, entry: &Entry| {
                let bytes =
                    key.namespace.len() + key.key.len() + entry.value.len() + ENTRY_OVERHEAD_BYTES;
                u32::try_from(bytes).unwrap_or(u32::MAX)
            })
            .expire_after(EntryExpiry)
            .build();
        Self {
            entries,
            default_ttl: config.default_ttl,
            namespace_ttls: Arc::new(config.namespace_ttls),
        }
    }

    /// The TTL of entries set in `namespace` without one.
    pub fn default_ttl(&self, namespace: &str) -> Duration {
        self.namespace_ttls
            .get(namespace)
            .copied()
            .unwrap_or(self.default_ttl)
    }

    pub async fn get(&self, key: &CacheKey) -> Option<Entry> {
        self.entries.get(key).await.filter(|e| !e.is_expired())
    }

    pub async fn set(&self, key: CacheKey, entry: Entry) {
        self.entries.insert(key, entry).await;
    }

    /// Stores `entry` unless a live entry is already there (a fill from L2 must not
    /// overwrite a newer value set meanwhile).
    pub async fn insert_if_absent(&self, key: CacheKey, entry: Entry) {
        self.entries.entry(key).or_insert(entry).await;
    }

    pub async fn delete(&self, key: &CacheKey) -> bool {
        self.entries
            .remove(key)
            .await
            .is_some_and(|e| !e.is_expired())
    }

    /// Drops every entry.
    pub fn clear(&self) {
        self.entries.invalidate_all();
    }

    /// Approximate: moka applies writes to its counters lazily.
    pub fn entry_count(&self) -> u64 {
        self.entries.entry_count()
    }

    /// Approximate weighted size in bytes, as `entry_count`.
    pub fn size_bytes(&self) -> u64 {
        self.entries.weighted_size()
    }

    /// Applies pending evictions and counter updates (for tests and scrapes).
    pub async fn sync(&self) {
        self.entries.run_pending_tasks().await;
    }
}

impl Tier for L1 {
    fn kind(&self) -> TierKind {
        TierKind::L1
    }

    fn get<'a>(&'a self, key: &'a CacheKey) -> BoxFuture<'a, Result<Option<Entry>, TierError>> {
        L1::get(self, key).map(Ok).boxed()
    }

    fn set(&self, key: CacheKey, entry: Entry) -> BoxFuture<'_, Result<(), TierError>> {
        L1::set(self, key, entry).map(Ok).boxed()
    }

    fn delete<'a>(&'a self, key: &'a CacheKey) -> BoxFuture<'a, Result<bool, TierError>> {
        L1::delete(self, key).map(Ok).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l1(max_bytes: u64) -> L1 {
        L1::new(L1Config {
            max_bytes,
            default_ttl: Duration::from_secs(3600),
            namespace_ttls: HashMap::from([("short".to_string(), Duration::from_secs(5))]),
        })
    }

    #[tokio::test]
    async fn set_get_delete() {
        let cache = l1(1 << 20);
        let key = CacheKey::new("ns", "k");
        cache
            .set(
                key.clone(),
                Entry::new(b"v".to_vec(), Duration::from_secs(60)),
            )
            .await;
        assert_eq!(&*cache.get(&key).await.expect("hit").value, b"v");
        assert!(cache.get(&CacheKey::new("other", "k")).await.is_none());
        assert!(cache.delete(&key).await);
        assert!(!cache.delete(&key).await);
        assert!(cache.get(&key).await.is_none());
    }

    #[tokio::test]
    async fn entry_expires_after_its_ttl() {
        let cache = l1(1 << 20);
        let key = CacheKey::new("ns", "k");
        cache
            .set(
                key.clone(),
                Entry::new(b"v".to_vec(), Duration::from_millis(30)),
            )
            .await;
        let long = CacheKey::new("ns", "long");
        cache
            .set(
                long.clone(),
                Entry::new(b"v".to_vec(), Duration::from_secs(60)),
            )
            .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(cache.get(&key).await.is_none());
        assert!(!cache.delete(&key).await);
        assert!(cache.get(&long).await.is_some());
    }

    #[tokio::test]
    async fn namespace_default_ttl() {
        let cache = l1(1 << 20);
        assert_eq!(cache.default_ttl("short"), Duration::from_secs(5));
        assert_eq!(cache.default_ttl("other"), Duration::from_secs(3600));
    }

    #[tokio::test]
    async fn capacity_is_bounded_in_bytes() {
        let cache = l1(10 * 1024);
        for i in 0..100 {
            cache
                .set(
                    CacheKey::new("ns", format!("k{i}")),
                    Entry::new(vec![0u8; 1024], Duration::from_secs(60)),
                )
                .await;
        }
        cache.sync().await;
        assert!(cache.size_bytes() <= 10 * 1024, "{}", cache.size_bytes());
        assert!(cache.entry_count() < 100);
    }
}
