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
//! (also when it panics) even when every caller gives up.
//!
//! Writes against fills: every L2 read (single-flight or batch) takes a write-generation
//! ticket ([`crate::versions`]) before it reads, and fills L1 only if no set or delete of the
//! key began since and none is in progress, so a value a write made old never lands in L1
//! after (or while) the write. A write also ends the in-flight lookup of its key: Gets after
//! it start a new one instead of joining one that may have read before it. Writes run as
//! their own tasks, so a caller that gives up does not leave one half done. Fills never
//! overwrite an entry that is already in L1.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::future::{BoxFuture, Shared};
use futures::FutureExt;
use tracing::{debug, info, warn};

use crate::l1::L1;
use crate::metrics::CacheMetrics;
use crate::tier::{CacheKey, Entry, Tier, TierError, TierKind};
use crate::versions::{Ticket, WriteGuard, WriteVersions};

type Flights = Arc<Mutex<HashMap<CacheKey, Flight>>>;

/// An L2 lookup that concurrent Gets of the same key share.
#[derive(Clone)]
struct Flight {
    id: u64,
    answer: Shared<BoxFuture<'static, Option<Entry>>>,
}

/// Removes a lookup from the in-flight map when its task ends, however it ends.
struct Landing {
    flights: Flights,
    key: CacheKey,
    id: u64,
}

impl Drop for Landing {
    fn drop(&mut self) {
        let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
        if flights.get(&self.key).is_some_and(|f| f.id == self.id) {
            flights.remove(&self.key);
        }
    }
}

/// A write of one key in progress. When it ends, the key's in-flight lookup (which may have
/// read before the write) takes no new callers; then the write generation moves on.
struct WriteFence {
    flights: Flights,
    key: CacheKey,
    _version: WriteGuard,
}

impl Drop for WriteFence {
    fn drop(&mut self) {
        let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
        flights.remove(&self.key);
    }
}

#[derive(Clone)]
pub struct Cache {
    l1: L1,
    l2: Option<Arc<dyn Tier>>,
    metrics: Arc<CacheMetrics>,
    flights: Flights,
    next_flight: Arc<AtomicU64>,
    versions: Arc<WriteVersions>,
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
            versions: Arc::default(),
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
        let lookup = {
            let (cache, l2, key) = (self.clone(), l2.clone(), key.clone());
            async move {
                let _landing = Landing {
                    flights: cache.flights.clone(),
                    key: key.clone(),
                    id,
                };
                let ticket = cache.versions.ticket(&key);
                let found = cache
                    .observe_l2("get", l2.get(&key))
                    .await
                    .unwrap_or_default();
                if let Some(entry) = &found {
                    cache.fill(ticket, key, entry.clone()).await;
                }
                found
            }
        };
        let task = tokio::spawn(lookup);
        // A lookup that panicked answers a miss (and has left the map).
        let answer = async move { task.await.unwrap_or_default() }
            .boxed()
            .shared();
        flights.insert(
            key.clone(),
            Flight {
                id,
                answer: answer.clone(),
            },
        );
        answer
    }

    /// Fills L1 with what an L2 read found, unless a write of the key began since `ticket`.
    async fn fill(&self, ticket: Ticket, key: CacheKey, entry: Entry) {
        self.versions
            .fill_if_unchanged(ticket, self.l1.insert_if_absent(key, entry))
            .await;
    }

    /// Call before a write of `key` touches either tier; hold until it is done with both.
    async fn begin_write(&self, key: &CacheKey) -> WriteFence {
        WriteFence {
            flights: self.flights.clone(),
            key: key.clone(),
            _version: self.versions.begin_write(key).await,
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
        let tickets: Vec<Ticket> = missed.iter().map(|k| self.versions.ticket(k)).collect();
        let Ok(answers) = self.observe_l2("batch_get", l2.get_many(&missed)).await else {
            return found;
        };
        for (((i, key), ticket), answer) in
            missing.into_iter().zip(missed).zip(tickets).zip(answers)
        {
            if let Some(entry) = answer {
                self.fill(ticket, key, entry.clone()).await;
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
        let cache = self.clone();
        run_to_end(async move {
            let _fence = cache.begin_write(&key).await;
            if let Some(l2) = &cache.l2 {
                let _ = cache
                    .observe_l2("set", l2.set(key.clone(), entry.clone()))
                    .await;
            }
            cache.l1.set(key, entry).await;
        })
        .await;
    }

    /// Stores every entry (one L2 round trip), as [`Cache::set`].
    pub async fn set_many(&self, entries: Vec<(CacheKey, Entry)>) {
        let cache = self.clone();
        run_to_end(async move {
            let mut fences = Vec::with_capacity(entries.len());
            for (key, _) in &entries {
                fences.push(cache.begin_write(key).await);
            }
            if let Some(l2) = &cache.l2 {
                let _ = cache
                    .observe_l2("batch_set", l2.set_many(entries.clone()))
                    .await;
            }
            for (key, entry) in entries {
                cache.l1.set(key, entry).await;
            }
        })
        .await;
    }

    /// Whether a live entry was removed from any tier. The L1 entry is removed even when
    /// L2 fails, and the failure is returned.
    pub async fn delete(&self, key: &CacheKey) -> Result<bool, TierError> {
        let (cache, key) = (self.clone(), key.clone());
        run_to_end(async move {
            let _fence = cache.begin_write(&key).await;
            let mut deleted = cache.l1.delete(&key).await;
            if let Some(l2) = &cache.l2 {
                deleted |= cache.observe_l2("delete", l2.delete(&key)).await?;
            }
            Ok(deleted)
        })
        .await
    }

    /// Drops this instance's L1 copy of `key` because another instance wrote it: a write as
    /// far as in-flight lookups are concerned, so none of them puts the old value back.
    pub async fn forget(&self, key: &CacheKey) {
        let _fence = self.begin_write(key).await;
        self.l1.delete(key).await;
    }

    /// Drops every L1 entry (invalidations may have been missed), fencing every lookup in
    /// flight as [`Cache::forget`] does one.
    pub async fn forget_all(&self) {
        let _versions = self.versions.begin_write_all().await;
        self.flights
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        self.l1.clear();
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

/// Runs `write` as its own task, so that it completes even when the caller gives up (a
/// half-done write would leave L1 and L2 disagreeing). A panic in it reaches the caller.
async fn run_to_end<T: Send + 'static>(write: impl Future<Output = T> + Send + 'static) -> T {
    match tokio::spawn(write).await {
        Ok(value) => value,
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("cache write task did not finish: {e}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invalidation::Invalidations;
    use crate::l1::L1Config;
    use crate::l2::{L2Config, RedisTier};
    use crate::testing::RedisServer;
    use prometheus_client::registry::Registry;
    use std::sync::atomic::AtomicUsize;
    use tokio::sync::Semaphore;

    /// Where a tier call waits, while closed, until the test lets it through.
    struct Gate {
        closed: AtomicBool,
        waiting: Semaphore,
        release: Semaphore,
    }

    impl Gate {
        fn new() -> Self {
            Self {
                closed: AtomicBool::new(false),
                waiting: Semaphore::new(0),
                release: Semaphore::new(0),
            }
        }

        fn close(&self) {
            self.closed.store(true, Ordering::SeqCst);
        }

        async fn pass(&self) {
            if self.closed.load(Ordering::SeqCst) {
                self.waiting.add_permits(1);
                self.release.acquire().await.expect("gate").forget();
            }
        }

        /// Waits until `n` more calls wait at the gate.
        async fn reached(&self, n: u32) {
            tokio::time::timeout(Duration::from_secs(10), self.waiting.acquire_many(n))
                .await
                .expect("calls did not reach the gate")
                .expect("gate")
                .forget();
        }

        /// Lets every call through, now and from now on.
        fn open(&self) {
            self.closed.store(false, Ordering::SeqCst);
            self.release.add_permits(Semaphore::MAX_PERMITS / 2);
        }
    }

    /// Wraps a tier to count its Gets, hold Gets after they read (`read_gate`) and Deletes
    /// before they reach the tier (`delete_gate`), and make the next Gets panic.
    struct Probe {
        inner: Arc<dyn Tier>,
        gets: AtomicUsize,
        panics: AtomicUsize,
        read_gate: Gate,
        delete_gate: Gate,
    }

    impl Probe {
        fn new(inner: Arc<dyn Tier>) -> Arc<Self> {
            Arc::new(Self {
                inner,
                gets: AtomicUsize::new(0),
                panics: AtomicUsize::new(0),
                read_gate: Gate::new(),
                delete_gate: Gate::new(),
            })
        }

        fn gets(&self) -> usize {
            self.gets.load(Ordering::SeqCst)
        }
    }

    impl Tier for Probe {
        fn kind(&self) -> TierKind {
            self.inner.kind()
        }

        fn get<'a>(&'a self, key: &'a CacheKey) -> BoxFuture<'a, Result<Option<Entry>, TierError>> {
            async move {
                self.gets.fetch_add(1, Ordering::SeqCst);
                let panic_now = self
                    .panics
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
                assert!(!panic_now, "injected panic in an L2 Get");
                let answer = self.inner.get(key).await;
                self.read_gate.pass().await;
                answer
            }
            .boxed()
        }

        fn get_many<'a>(
            &'a self,
            keys: &'a [CacheKey],
        ) -> BoxFuture<'a, Result<Vec<Option<Entry>>, TierError>> {
            async move {
                let answer = self.inner.get_many(keys).await;
                self.read_gate.pass().await;
                answer
            }
            .boxed()
        }

        fn set(&self, key: CacheKey, entry: Entry) -> BoxFuture<'_, Result<(), TierError>> {
            self.inner.set(key, entry)
        }

        fn delete<'a>(&'a self, key: &'a CacheKey) -> BoxFuture<'a, Result<bool, TierError>> {
            async move {
                self.delete_gate.pass().await;
                self.inner.delete(key).await
            }
            .boxed()
        }
    }

    /// A Redis tier behind a probe, holding `k` = "old", and a cache over it.
    async fn probed(redis: &RedisServer) -> anyhow::Result<(Cache, Arc<Probe>)> {
        let l2 = redis_tier(redis);
        l2.set(
            key("k"),
            Entry::new(b"old".to_vec(), Duration::from_secs(60)),
        )
        .await?;
        let probe = Probe::new(l2);
        let (cache, _) = cache(Some(probe.clone()));
        Ok((cache, probe))
    }

    fn redis_tier(redis: &RedisServer) -> Arc<dyn Tier> {
        let config = L2Config {
            url: redis.url(),
            timeout: Duration::from_secs(1),
            persistent_ttl: Duration::from_secs(3600),
        };
        Arc::new(RedisTier::new(&config, Invalidations::new(0)).expect("client"))
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
        let Some(redis) = RedisServer::start("l2_hit_fills_l1_with_the_remaining_ttl").await?
        else {
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
        let Some(redis) = RedisServer::start("writes_and_deletes_reach_both_tiers").await? else {
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
        let Some(redis) = RedisServer::start("batch_get_answers_from_each_tier_in_order").await?
        else {
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
        let Some(mut redis) = RedisServer::start("redis_down_degrades_to_l1").await? else {
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
        let Some(redis) = RedisServer::start("concurrent_gets_share_one_l2_lookup").await? else {
            return Ok(());
        };
        let l2 = redis_tier(&redis);
        l2.set(
            key("hot"),
            Entry::new(b"v".to_vec(), Duration::from_secs(60)),
        )
        .await?;
        let probe = Probe::new(l2);
        probe.read_gate.close();
        let (cache, registry) = cache(Some(probe.clone()));

        const GETS: usize = 16;
        let tasks: Vec<_> = (0..GETS)
            .map(|_| {
                let cache = cache.clone();
                tokio::spawn(async move { cache.get(&key("hot")).await })
            })
            .collect();
        // Hold the first lookup's answer until every other Get has joined it.
        probe.read_gate.reached(1).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while cache.metrics.l2_coalesced_count() < (GETS - 1) as u64 {
            assert!(Instant::now() < deadline, "Gets did not coalesce");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        probe.read_gate.open();
        for task in tasks {
            let (entry, tier) = task.await?.expect("hit");
            assert_eq!((&*entry.value, tier), (&b"v"[..], TierKind::L2));
        }
        assert_eq!(probe.gets(), 1, "one L2 GET for {GETS} concurrent Gets");
        assert_eq!(cache.get(&key("hot")).await.expect("hit").1, TierKind::L1);
        assert_eq!(probe.gets(), 1);
        assert!(metrics_text(&registry)
            .contains(&format!("taskloom_cache_l2_coalesced_total {}", GETS - 1)),);
        Ok(())
    }

    #[tokio::test]
    async fn a_write_during_a_lookup_is_not_overwritten_by_its_fill() -> anyhow::Result<()> {
        let Some(redis) =
            RedisServer::start("a_write_during_a_lookup_is_not_overwritten_by_its_fill").await?
        else {
            return Ok(());
        };
        let (cache, probe) = probed(&redis).await?;
        probe.read_gate.close();
        let lookup = tokio::spawn({
            let cache = cache.clone();
            async move { cache.get(&key("k")).await }
        });
        // The lookup has read "old" and waits at the gate.
        probe.read_gate.reached(1).await;
        cache.set(key("k"), b"new".to_vec(), None).await;
        probe.read_gate.open();
        let (entry, tier) = lookup.await?.expect("hit");
        assert_eq!((&*entry.value, tier), (&b"old"[..], TierKind::L2));
        let (entry, tier) = cache.get(&key("k")).await.expect("hit");
        assert_eq!((&*entry.value, tier), (&b"new"[..], TierKind::L1));
        Ok(())
    }

    #[tokio::test]
    async fn a_delete_during_a_lookup_is_not_undone_by_its_fill() -> anyhow::Result<()> {
        let Some(redis) =
            RedisServer::start("a_delete_during_a_lookup_is_not_undone_by_its_fill").await?
        else {
            return Ok(());
        };
        let (cache, probe) = probed(&redis).await?;
        probe.read_gate.close();
        let lookup = tokio::spawn({
            let cache = cache.clone();
            async move { cache.get(&key("k")).await }
        });
        probe.read_gate.reached(1).await;
        assert!(cache.delete(&key("k")).await?);
        probe.read_gate.open();
        assert!(lookup.await?.is_some(), "the lookup answers what it read");
        assert!(
            cache.l1().get(&key("k")).await.is_none(),
            "but does not fill L1"
        );
        assert!(cache.get(&key("k")).await.is_none());
        Ok(())
    }

    /// A Get that misses L1 after a delete removed the L1 entry, but reads L2 before the
    /// delete reaches it, must not put the deleted value back into L1.
    #[tokio::test]
    async fn a_get_while_a_delete_reaches_l2_does_not_refill_l1() -> anyhow::Result<()> {
        let Some(redis) =
            RedisServer::start("a_get_while_a_delete_reaches_l2_does_not_refill_l1").await?
        else {
            return Ok(());
        };
        let (cache, probe) = probed(&redis).await?;
        assert_eq!(cache.get(&key("k")).await.expect("hit").1, TierKind::L2);
        assert_eq!(cache.get(&key("k")).await.expect("hit").1, TierKind::L1);

        probe.delete_gate.close();
        let delete = tokio::spawn({
            let cache = cache.clone();
            async move { cache.delete(&key("k")).await }
        });
        // The L1 entry is gone; the DEL has not reached Redis.
        probe.delete_gate.reached(1).await;
        let (entry, tier) = cache.get(&key("k")).await.expect("L2 still has it");
        assert_eq!((&*entry.value, tier), (&b"old"[..], TierKind::L2));
        probe.delete_gate.open();
        assert!(delete.await??);

        assert!(cache.l1().get(&key("k")).await.is_none(), "refilled L1");
        assert!(cache.get(&key("k")).await.is_none());
        Ok(())
    }

    /// A Get after a delete returned must not join a lookup that started during the delete
    /// (and may have read the value before the DEL).
    #[tokio::test]
    async fn a_get_after_a_delete_does_not_join_a_lookup_from_during_it() -> anyhow::Result<()> {
        let Some(redis) =
            RedisServer::start("a_get_after_a_delete_does_not_join_a_lookup_from_during_it")
                .await?
        else {
            return Ok(());
        };
        let (cache, probe) = probed(&redis).await?;
        probe.delete_gate.close();
        probe.read_gate.close();
        let delete = tokio::spawn({
            let cache = cache.clone();
            async move { cache.delete(&key("k")).await }
        });
        probe.delete_gate.reached(1).await;
        let during = tokio::spawn({
            let cache = cache.clone();
            async move { cache.get(&key("k")).await }
        });
        // That lookup has read "old" and waits.
        probe.read_gate.reached(1).await;
        probe.delete_gate.open();
        assert!(delete.await??);

        let after = tokio::spawn({
            let cache = cache.clone();
            async move { cache.get(&key("k")).await }
        });
        // Either it joined the waiting lookup or it started its own (a second L2 Get).
        let deadline = Instant::now() + Duration::from_secs(10);
        while cache.metrics.l2_coalesced_count() == 0 && probe.gets() < 2 {
            assert!(
                Instant::now() < deadline,
                "the Get after the delete did not start"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        probe.read_gate.open();
        assert!(
            during.await?.is_some(),
            "concurrent with the delete: either answer"
        );
        assert!(after.await?.is_none(), "after the delete: gone");
        assert!(cache.get(&key("k")).await.is_none());
        Ok(())
    }

    /// A batch Get whose L2 round trip overlaps a delete must not fill L1 with the value.
    #[tokio::test]
    async fn a_batch_get_during_a_delete_does_not_refill_l1() -> anyhow::Result<()> {
        let Some(redis) =
            RedisServer::start("a_batch_get_during_a_delete_does_not_refill_l1").await?
        else {
            return Ok(());
        };
        let (cache, probe) = probed(&redis).await?;
        probe.read_gate.close();
        let batch = tokio::spawn({
            let cache = cache.clone();
            async move { cache.get_many(vec![key("k"), key("other")]).await }
        });
        // The batch has read "old" and waits.
        probe.read_gate.reached(1).await;
        assert!(cache.delete(&key("k")).await?);
        probe.read_gate.open();
        let got = batch.await?;
        assert_eq!(&*got[0].as_ref().expect("read before").0.value, b"old");

        assert!(cache.l1().get(&key("k")).await.is_none(), "refilled L1");
        assert!(cache.get(&key("k")).await.is_none());
        Ok(())
    }

    /// A lookup task that panics answers a miss and leaves the in-flight map, so the key is
    /// looked up again next time instead of joining the dead lookup forever.
    #[tokio::test]
    async fn a_panicking_lookup_does_not_stick() -> anyhow::Result<()> {
        let Some(redis) = RedisServer::start("a_panicking_lookup_does_not_stick").await? else {
            return Ok(());
        };
        let (cache, probe) = probed(&redis).await?;
        probe.panics.store(1, Ordering::SeqCst);
        assert!(cache.get(&key("k")).await.is_none(), "the panicking lookup");
        let (entry, tier) = cache.get(&key("k")).await.expect("looked up again");
        assert_eq!((&*entry.value, tier), (&b"old"[..], TierKind::L2));
        assert_eq!(probe.gets(), 2);
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
