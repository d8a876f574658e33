//! The multi-level cache: L1 first, then L2 (when configured), filling L1 on an L2 hit with
//! the entry's remaining TTL. Writes and deletes go to both tiers.
//!
//! When L2 fails (Redis down or slow), the cache degrades instead of failing:
//! - reads that miss L1 are misses (never errors);
//! - sets land in L1 and succeed;
//! - deletes remove the L1 entry and then report the L2 failure, because a delete that
//!   silently left the shared copy would bring the value back once Redis returns.
//!
//! Each failure is counted (`taskloom_cache_l2_errors_total{op}`); the change between "L2
//! up" and "L2 down" is logged once each way, single failures at debug level.
//!
//! Single-flight: concurrent Gets of one key that miss L1 share one L2 lookup (an in-flight
//! map of shared futures). The lookup runs as its own task, so it completes and cleans up
//! even when every caller gives up. A set or delete of the key meanwhile detaches the
//! lookup, which then answers its callers but does not fill L1 with what may be the older
//! value. Fills never overwrite an entry that is already in L1.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::future::{BoxFuture, Shared};
use futures::FutureExt;
use tracing::{debug, info, warn};

use crate::l1::L1;
use crate::metrics::CacheMetrics;
use crate::tier::{CacheKey, Entry, Tier, TierError, TierKind};

/// An L2 lookup that concurrent Gets of the same key share.
#[derive(Clone)]
struct Flight {
    id: u64,
    /// Set when a write to the key makes the lookup's answer unfit for L1.
    detached: Arc<AtomicBool>,
    answer: Shared<BoxFuture<'static, Option<Entry>>>,
}

#[derive(Clone)]
pub struct Cache {
    l1: L1,
    l2: Option<Arc<dyn Tier>>,
    metrics: Arc<CacheMetrics>,
    flights: Arc<Mutex<HashMap<CacheKey, Flight>>>,
    next_flight: Arc<AtomicU64>,
    l2_up: Arc<AtomicBool>,
}

impl Cache {
    pub fn new(l1: L1, l2: Option<Arc<dyn Tier>>, metrics: Arc<CacheMetrics>) -> Self {
        Self {
            l1,
            l2,
            metrics,
            flights: Arc::default(),
            next_flight: Arc::default(),
            l2_up: Arc::new(AtomicBool::new(true)),
        }
    }

    pub fn l1(&self) -> &L1 {
        &self.l1
    }

    pub fn l2(&self) -> Option<&Arc<dyn Tier>> {
        self.l2.as_ref()
    }

    /// Whether L2 is reachable (always, without an L2).
    pub async fn ping_l2(&self) -> Result<(), TierError> {
        match &self.l2 {
            None => Ok(()),
            Some(l2) => self.observe_l2("ping", l2.ping()).await,
        }
    }

    /// The entry and the tier that had it. An L2 failure is a miss.
    pub async fn get(&self, key: &CacheKey) -> Option<(Entry, TierKind)> {
        if let Some(entry) = self.l1.get(key).await {
            return Some((entry, TierKind::L1));
        }
        let l2 = self.l2.as_ref()?;
        let answer = self.join_flight(key, l2).await?;
        Some((answer, TierKind::L2))
    }

    /// Joins the in-flight L2 lookup of `key`, starting one if there is none.
    fn join_flight(
        &self,
        key: &CacheKey,
        l2: &Arc<dyn Tier>,
    ) -> Shared<BoxFuture<'static, Option<Entry>>> {
        let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(flight) = flights.get(key) {
            self.metrics.l2_coalesced();
            return flight.answer.clone();
        }
        let id = self.next_flight.fetch_add(1, Ordering::Relaxed);
        let detached = Arc::new(AtomicBool::new(false));
        let lookup = {
            let (cache, l2, key, detached) =
                (self.clone(), l2.clone(), key.clone(), detached.clone());
            async move {
                let found = cache
                    .observe_l2("get", l2.get(&key))
                    .await
                    .unwrap_or_default();
                if let Some(entry) = &found {
                    if !detached.load(Ordering::Acquire) {
                        cache.l1.insert_if_absent(key.clone(), entry.clone()).await;
                    }
                }
                let mut flights = cache.flights.lock().unwrap_or_else(PoisonError::into_inner);
                if flights.get(&key).is_some_and(|f| f.id == id) {
                    flights.remove(&key);
                }
                found
            }
        };
        let task = tokio::spawn(lookup);
        let answer = async move { task.await.unwrap_or_default() }
            .boxed()
            .shared();
        flights.insert(
            key.clone(),
            Flight {
                id,
                detached,
                answer: answer.clone(),
            },
        );
        answer
    }

    /// Stops an in-flight lookup of `key` from filling L1 (a write makes its answer old).
    fn detach_flight(&self, key: &CacheKey) {
        let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(flight) = flights.remove(key) {
            flight.detached.store(true, Ordering::Release);
        }
    }

    /// One answer per key, in order: L1 first, then one L2 round trip for the L1 misses.
    /// (Batches do not join single-key flights.) An L2 failure makes its keys misses.
    pub async fn get_many(&self, keys: Vec<CacheKey>) -> Vec<Option<(Entry, TierKind)>> {
        let mut found = Vec::with_capacity(keys.len());
        let mut missing = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let entry = self.l1.get(key).await;
            if entry.is_none() {
                missing.push(i);
            }
            found.push(entry.map(|e| (e, TierKind::L1)));
        }
        let Some(l2) = &self.l2 else {
            return found;
        };
        if missing.is_empty() {
            return found;
        }
        let missed: Vec<CacheKey> = missing.iter().map(|&i| keys[i].clone()).collect();
        let Ok(answers) = self.observe_l2("batch_get", l2.get_many(&missed)).await else {
            return found;
        };
        for ((i, key), answer) in missing.into_iter().zip(missed).zip(answers) {
            if let Some(entry) = answer {
                self.l1.insert_if_absent(key, entry.clone()).await;
                found[i] = Some((entry, TierKind::L2));
            }
        }
        found
    }

    /// The TTL of an entry set without one in `namespace`.
    pub fn ttl_or_default(&self, namespace: &str, ttl: Option<Duration>) -> Duration {
        ttl.unwrap_or_else(|| self.l1.default_ttl(namespace))
    }

    /// Stores `value`; a `ttl` of `None` takes the namespace's default. An L2 failure is
    /// counted and logged; the entry is still in L1.
    pub async fn set(&self, key: CacheKey, value: Vec<u8>, ttl: Option<Duration>) {
        let entry = Entry::new(value, self.ttl_or_default(&key.namespace, ttl));
        self.detach_flight(&key);
        if let Some(l2) = &self.l2 {
            let _ = self
                .observe_l2("set", l2.set(key.clone(), entry.clone()))
                .await;
        }
        self.l1.set(key, entry).await;
    }

    /// Stores every entry (one L2 round trip), as [`Cache::set`].
    pub async fn set_many(&self, entries: Vec<(CacheKey, Entry)>) {
        for (key, _) in &entries {
            self.detach_flight(key);
        }
        if let Some(l2) = &self.l2 {
            let _ = self
                .observe_l2("batch_set", l2.set_many(entries.clone()))
                .await;
        }
        for (key, entry) in entries {
            self.l1.set(key, entry).await;
        }
    }

    /// Whether a live entry was removed from any tier. The L1 entry is removed even when
    /// L2 fails, and the failure is returned.
    pub async fn delete(&self, key: &CacheKey) -> Result<bool, TierError> {
        self.detach_flight(key);
        let mut deleted = self.l1.delete(key).await;
        if let Some(l2) = &self.l2 {
            deleted |= self.observe_l2("delete", l2.delete(key)).await?;
        }
        Ok(deleted)
    }

    /// Times an L2 call, counts and logs its failure, and tracks whether L2 is up.
    async fn observe_l2<T>(
        &self,
        op: &'static str,
        call: BoxFuture<'_, Result<T, TierError>>,
    ) -> Result<T, TierError> {
        let start = Instant::now();
        let result = call.await;
        self.metrics.l2_duration(op, start.elapsed().as_secs_f64());
        match &result {
            Ok(_) => {
                if !self.l2_up.swap(true, Ordering::Relaxed) {
                    info!(op, "L2 (Redis) reachable again");
                }
            }
            Err(e) => {
                self.metrics.l2_error(op);
                if self.l2_up.swap(false, Ordering::Relaxed) {
                    warn!(op, error = %e, "L2 (Redis) failing: reads fall back to L1, writes go to L1 only");
                } else {
                    debug!(op, error = %e, "L2 (Redis) call failed");
                }
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::l1::L1Config;
    use crate::l2::{L2Config, RedisTier};
    use crate::testing::RedisServer;
    use prometheus_client::registry::Registry;
    use std::sync::atomic::AtomicUsize;
    use tokio::sync::Semaphore;

    /// Wraps a tier to count its Gets and, when gated, hold each Get's answer until the
    /// test lets it through.
    struct Counting {
        inner: Arc<dyn Tier>,
        gets: AtomicUsize,
        answered: AtomicUsize,
        gate: Option<Semaphore>,
    }

    impl Counting {
        fn new(inner: Arc<dyn Tier>, gated: bool) -> Arc<Self> {
            Arc::new(Self {
                inner,
                gets: AtomicUsize::new(0),
                answered: AtomicUsize::new(0),
                gate: gated.then(|| Semaphore::new(0)),
            })
        }

        fn gets(&self) -> usize {
            self.gets.load(Ordering::SeqCst)
        }

        fn open(&self) {
            if let Some(gate) = &self.gate {
                gate.add_permits(Semaphore::MAX_PERMITS / 2);
            }
        }
    }

    impl Tier for Counting {
        fn kind(&self) -> TierKind {
            self.inner.kind()
        }

        fn get<'a>(&'a self, key: &'a CacheKey) -> BoxFuture<'a, Result<Option<Entry>, TierError>> {
            async move {
                self.gets.fetch_add(1, Ordering::SeqCst);
                let answer = self.inner.get(key).await;
                self.answered.fetch_add(1, Ordering::SeqCst);
                if let Some(gate) = &self.gate {
                    let _permit = gate.acquire().await.expect("gate");
                }
                answer
            }
            .boxed()
        }

        fn set(&self, key: CacheKey, entry: Entry) -> BoxFuture<'_, Result<(), TierError>> {
            self.inner.set(key, entry)
        }

        fn delete<'a>(&'a self, key: &'a CacheKey) -> BoxFuture<'a, Result<bool, TierError>> {
            self.inner.delete(key)
        }
    }

    fn redis_tier(redis: &RedisServer) -> Arc<dyn Tier> {
        Arc::new(
            RedisTier::new(&L2Config {
                url: redis.url(),
                timeout: Duration::from_secs(1),
                persistent_ttl: Duration::from_secs(3600),
            })
            .expect("client"),
        )
    }

    /// A cache with its own L1 and metrics over `l2`.
    fn cache(l2: Option<Arc<dyn Tier>>) -> (Cache, Registry) {
        let mut registry = Registry::default();
        let l1 = L1::new(L1Config {
            max_bytes: 1 << 20,
            default_ttl: Duration::from_secs(3600),
            namespace_ttls: HashMap::new(),
        });
        let metrics = Arc::new(CacheMetrics::register(&mut registry, l1.clone()));
        (Cache::new(l1, l2, metrics), registry)
    }

    fn metrics_text(registry: &Registry) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, registry).expect("encode");
        text
    }

    fn key(k: &str) -> CacheKey {
        CacheKey::new("ns", k)
    }

    #[tokio::test]
    async fn l2_hit_fills_l1_with_the_remaining_ttl() -> anyhow::Result<()> {
        let Some(redis) = RedisServer::start().await? else {
            return Ok(());
        };
        let l2 = redis_tier(&redis);
        let (writer, _) = cache(Some(l2.clone()));
        let (reader, _) = cache(Some(l2));
        writer
            .set(key("k"), b"v".to_vec(), Some(Duration::from_secs(30)))
            .await;
        assert_eq!(writer.get(&key("k")).await.expect("hit").1, TierKind::L1);

        // Another instance (its own L1) finds it in L2 and keeps it in L1 from then on.
        let (entry, tier) = reader.get(&key("k")).await.expect("hit");
        assert_eq!((&*entry.value, tier), (&b"v"[..], TierKind::L2));
        let (entry, tier) = reader.get(&key("k")).await.expect("hit");
        assert_eq!(tier, TierKind::L1);
        // The L1 copy expires with the L2 entry, not after L1's default hour.
        assert!(entry.remaining_ttl() <= Duration::from_secs(30));
        assert!(reader.get(&key("missing")).await.is_none());
        Ok(())
    }

    #[tokio::test]
    async fn writes_and_deletes_reach_both_tiers() -> anyhow::Result<()> {
        let Some(redis) = RedisServer::start().await? else {
            return Ok(());
        };
        let l2 = redis_tier(&redis);
        let (a, _) = cache(Some(l2.clone()));
        let (b, _) = cache(Some(l2.clone()));
        a.set(key("k"), b"v".to_vec(), None).await;
        assert!(b.get(&key("k")).await.is_some());
        assert!(a.delete(&key("k")).await?);
        assert!(l2.get(&key("k")).await?.is_none());
        assert!(!a.delete(&key("k")).await?);
        Ok(())
    }

    #[tokio::test]
    async fn batch_get_answers_from_each_tier_in_order() -> anyhow::Result<()> {
        let Some(redis) = RedisServer::start().await? else {
            return Ok(());
        };
        let l2 = redis_tier(&redis);
        let (writer, _) = cache(Some(l2.clone()));
        let (reader, _) = cache(Some(l2));
        let ttl = Duration::from_secs(60);
        writer
            .set_many(vec![
                (key("a"), Entry::new(b"1".to_vec(), ttl)),
                (key("c"), Entry::new(b"3".to_vec(), ttl)),
            ])
            .await;
        reader.set(key("d"), b"4".to_vec(), None).await;
        reader.get(&key("a")).await.expect("a into the reader's L1");
        let got = reader
            .get_many(vec![key("a"), key("b"), key("c"), key("d")])
            .await;
        let summary: Vec<_> = got
            .iter()
            .map(|f| f.as_ref().map(|(e, tier)| (&*e.value, *tier)))
            .collect();
        assert_eq!(
            summary,
            vec![
                Some((&b"1"[..], TierKind::L1)),
                None,
                Some((&b"3"[..], TierKind::L2)),
                Some((&b"4"[..], TierKind::L1)),
            ]
        );
        // The L2 hit filled L1.
        assert_eq!(reader.get(&key("c")).await.expect("c").1, TierKind::L1);
        Ok(())
    }

    #[tokio::test]
    async fn redis_down_degrades_to_l1() -> anyhow::Result<()> {
        let Some(mut redis) = RedisServer::start().await? else {
            return Ok(());
        };
        let (cache, registry) = cache(Some(redis_tier(&redis)));
        cache.set(key("kept"), b"v".to_vec(), None).await;
        cache.ping_l2().await?;
        redis.stop();

        assert!(
            cache.ping_l2().await.is_err(),
            "readiness must see Redis down"
        );
        assert_eq!(cache.get(&key("kept")).await.expect("L1").1, TierKind::L1);
        assert!(
            cache.get(&key("unknown")).await.is_none(),
            "a miss, not an error"
        );
        cache.set(key("new"), b"n".to_vec(), None).await;
        assert_eq!(&*cache.get(&key("new")).await.expect("L1").0.value, b"n");
        let got = cache.get_many(vec![key("new"), key("unknown")]).await;
        assert!(got[0].is_some() && got[1].is_none());
        cache
            .set_many(vec![(
                key("b"),
                Entry::new(b"b".to_vec(), Duration::from_secs(9)),
            )])
            .await;
        assert!(cache.get(&key("b")).await.is_some());
        // A delete cannot reach the shared copy: it removes L1's and reports the failure.
        assert!(cache.delete(&key("kept")).await.is_err());
        assert!(cache.get(&key("kept")).await.is_none());

        let text = metrics_text(&registry);
        for op in ["get", "set", "batch_get", "batch_set", "delete", "ping"] {
            let line = format!("taskloom_cache_l2_errors_total{{op=\"{op}\"}} ");
            assert!(text.contains(&line), "{op}: {text}");
        }
        Ok(())
    }

    #[tokio::test]
    async fn concurrent_gets_share_one_l2_lookup() -> anyhow::Result<()> {
        let Some(redis) = RedisServer::start().await? else {
            return Ok(());
        };
        let l2 = redis_tier(&redis);
        l2.set(
            key("hot"),
            Entry::new(b"v".to_vec(), Duration::from_secs(60)),
        )
        .await?;
        let counting = Counting::new(l2, true);
        let (cache, registry) = cache(Some(counting.clone()));

        const GETS: usize = 16;
        let tasks: Vec<_> = (0..GETS)
            .map(|_| {
                let cache = cache.clone();
                tokio::spawn(async move { cache.get(&key("hot")).await })
            })
            .collect();
        // Hold the first lookup's answer until every other Get has joined it.
        let deadline = Instant::now() + Duration::from_secs(10);
        while cache.metrics.l2_coalesced_count() < (GETS - 1) as u64 {
            assert!(Instant::now() < deadline, "Gets did not coalesce");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        counting.open();
        for task in tasks {
            let (entry, tier) = task.await?.expect("hit");
            assert_eq!((&*entry.value, tier), (&b"v"[..], TierKind::L2));
        }
        assert_eq!(counting.gets(), 1, "one L2 GET for {GETS} concurrent Gets");
        assert_eq!(cache.get(&key("hot")).await.expect("hit").1, TierKind::L1);
        assert_eq!(counting.gets(), 1);
        assert!(metrics_text(&registry)
            .contains(&format!("taskloom_cache_l2_coalesced_total {}", GETS - 1)),);
        Ok(())
    }

    #[tokio::test]
    async fn a_write_during_a_lookup_is_not_overwritten_by_its_fill() -> anyhow::Result<()> {
        let Some(redis) = RedisServer::start().await? else {
            return Ok(());
        };
        let l2 = redis_tier(&redis);
        l2.set(
            key("k"),
            Entry::new(b"old".to_vec(), Duration::from_secs(60)),
        )
        .await?;
        let counting = Counting::new(l2, true);
        let (cache, _) = cache(Some(counting.clone()));
        let lookup = tokio::spawn({
            let cache = cache.clone();
            async move { cache.get(&key("k")).await }
        });
        // The lookup has read "old" and waits at the gate.
        let deadline = Instant::now() + Duration::from_secs(10);
        while counting.answered.load(Ordering::SeqCst) == 0 {
            assert!(Instant::now() < deadline, "lookup did not start");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        cache.set(key("k"), b"new".to_vec(), None).await;
        counting.open();
        let (entry, tier) = lookup.await?.expect("hit");
        assert_eq!((&*entry.value, tier), (&b"old"[..], TierKind::L2));
        let (entry, tier) = cache.get(&key("k")).await.expect("hit");
        assert_eq!((&*entry.value, tier), (&b"new"[..], TierKind::L1));
        Ok(())
    }

    #[tokio::test]
    async fn a_delete_during_a_lookup_is_not_undone_by_its_fill() -> anyhow::Result<()> {
        let Some(redis) = RedisServer::start().await? else {
            return Ok(());
        };
        let l2 = redis_tier(&redis);
        l2.set(
            key("k"),
            Entry::new(b"old".to_vec(), Duration::from_secs(60)),
        )
        .await?;
        let counting = Counting::new(l2, true);
        let (cache, _) = cache(Some(counting.clone()));
        let lookup = tokio::spawn({
            let cache = cache.clone();
            async move { cache.get(&key("k")).await }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while counting.answered.load(Ordering::SeqCst) == 0 {
            assert!(Instant::now() < deadline, "lookup did not start");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(cache.delete(&key("k")).await?);
        counting.open();
        assert!(lookup.await?.is_some(), "the lookup answers what it read");
        assert!(
            cache.l1().get(&key("k")).await.is_none(),
            "but does not fill L1"
        );
        assert!(cache.get(&key("k")).await.is_none());
        Ok(())
    }

    #[tokio::test]
    async fn l1_only_without_l2() {
        let (cache, _) = cache(None);
        cache.set(key("k"), b"v".to_vec(), None).await;
        assert_eq!(cache.get(&key("k")).await.expect("hit").1, TierKind::L1);
        assert!(cache.get(&key("x")).await.is_none());
        assert!(cache.ping_l2().await.is_ok());
        assert!(cache.delete(&key("k")).await.expect("delete"));
    }
}
