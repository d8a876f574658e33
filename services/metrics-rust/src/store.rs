//! The in-memory store of ingested series.
//!
//! Families (one per metric) live in a sharded map; each family spreads its series over
//! `SHARDS` hash tables, each behind its own `RwLock`. A sample for an existing series takes
//! one shard's read lock and updates atomics, so concurrent streams do not wait on each
//! other and there is no global lock on the hot path. Creating a series takes one shard's
//! write lock; creating a family (rare) takes the one creation lock. A batch is checked
//! whole before any of it is applied, so a bad batch changes nothing; a sample of a series
//! the store holds is matched by its bytes, so only new series pay for full validation.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, RwLockReadGuard};

use dashmap::DashMap;
use foldhash::fast::RandomState;
use hashbrown::HashTable;

use crate::clock::Now;
use crate::naming::{collision, exposed_labels, family_key};
use crate::sample::{Kind, SampleView};
use crate::series::{Cells, HistogramSnapshot};
use crate::validate::{
    check_kind, check_labels, check_metric_name, check_payload, Invalid, RejectReason,
};

/// Prometheus' default histogram buckets, used by a histogram metric whose first sample
/// was a single observation.
pub const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Hash tables per family: enough that two streams rarely meet on one lock.
const SHARDS: usize = 16;

/// Bounds on what the store holds.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Series in all.
    pub max_series: usize,
    /// Series of one metric (label cardinality).
    pub max_series_per_metric: usize,
}

/// Why a valid sample was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Its metric already has `max_series_per_metric` series.
    MetricSeriesLimit,
    /// The store already holds `max_series` series.
    SeriesLimit,
    /// Another stream created its metric with another kind or other bounds while this
    /// batch was being checked.
    Conflict,
}

impl DropReason {
    pub const ALL: [DropReason; 3] = [
        DropReason::MetricSeriesLimit,
        DropReason::SeriesLimit,
        DropReason::Conflict,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::MetricSeriesLimit => "metric_series_limit",
            DropReason::SeriesLimit => "series_limit",
            DropReason::Conflict => "conflict",
        }
    }
}

/// What became of a valid batch.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Ingested {
    pub accepted: u64,
    /// Dropped samples, indexed like `DropReason::ALL`.
    pub dropped: [u64; DropReason::ALL.len()],
}

impl Ingested {
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().sum()
    }
}

/// One series: its labels (sorted by name), their exposition text, and its cells.
pub struct Series {
    labels: Box<[(Box<str>, Box<str>)]>,
    /// `a="x",b="y"`, escaped, without braces.
    exposed_labels: Box<str>,
    hash: u64,
    /// `Now::mono_ms` of the latest sample.
    last_seen: AtomicU64,
    pub cells: Cells,
}

impl Series {
    pub fn labels(&self) -> &[(Box<str>, Box<str>)] {
        &self.labels
    }

    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k.as_ref() == name)
            .map(|(_, v)| v.as_ref())
    }

    pub fn exposed_labels(&self) -> &str {
        &self.exposed_labels
    }

    fn matches(&self, labels: &[(&[u8], &[u8])]) -> bool {
        self.labels.len() == labels.len()
            && self
                .labels
                .iter()
                .zip(labels)
                .all(|((k, v), (k2, v2))| k.as_bytes() == *k2 && v.as_bytes() == *v2)
    }

    /// Applies a checked sample; the caller holds the series' shard lock, so expiry cannot
    /// take the series out meanwhile.
    fn record(&self, sample: &SampleView<'_>, bounds: &[f64], now: Now) {
        self.cells.apply(
            sample.value,
            sample.histogram.as_deref(),
            &sample.exemplars,
            bounds,
            now.unix_s,
        );
        if self.last_seen.load(Ordering::Relaxed) != now.mono_ms {
            self.last_seen.store(now.mono_ms, Ordering::Relaxed);
        }
    }
}

type Shard = RwLock<HashTable<Arc<Series>>>;

/// All series of one metric.
pub struct Family {
    /// The family name of the exposition: a counter's name without `_total`.
    name: Box<str>,
    kind: Kind,
    /// The first help text a sample brought.
    help: OnceLock<Box<str>>,
    /// Histogram bucket upper bounds (+Inf implied); empty for other kinds.
    bounds: Box<[f64]>,
    shards: Box<[Shard]>,
    series: AtomicUsize,
    /// Samples dropped because this metric reached its series limit.
    limit_dropped: AtomicU64,
    /// Set, under every shard's write lock, when the empty family leaves the store.
    retired: AtomicBool,
}

impl Family {
    fn new(name: &str, kind: Kind, help: &[u8], bounds: &[f64]) -> Self {
        let family = Self {
            name: name.into(),
            kind,
            help: OnceLock::new(),
            bounds: bounds.into(),
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            series: AtomicUsize::new(0),
            limit_dropped: AtomicU64::new(0),
            retired: AtomicBool::new(false),
        };
        family.learn_help(help);
        family
    }

    /// Keeps the first non-empty help text (checked UTF-8 by `check_payload`).
    fn learn_help(&self, help: &[u8]) {
        if !help.is_empty() && self.help.get().is_none() {
            let _ = self.help.set(String::from_utf8_lossy(help).into());
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The help text; empty when no sample brought one.
    pub fn help(&self) -> &str {
        self.help.get().map_or("", |h| h.as_ref())
    }

    pub fn bounds(&self) -> &[f64] {
        &self.bounds
    }

    pub fn series_count(&self) -> usize {
        self.series.load(Ordering::Relaxed)
    }

    pub fn limit_dropped(&self) -> u64 {
        self.limit_dropped.load(Ordering::Relaxed)
    }

    /// The name series of this family carry in the exposition (`_total` for counters).
    pub fn sample_name(&self) -> Cow<'_, str> {
        match self.kind {
            Kind::Counter => Cow::Owned(format!("{}_total", self.name)),
            _ => Cow::Borrowed(&self.name),
        }
    }

    /// Calls `f` with each shard's series, the shard read-locked meanwhile.
    pub fn for_each_shard(&self, mut f: impl FnMut(&mut dyn Iterator<Item = &Arc<Series>>)) {
        for shard in self.shards.iter() {
            let table = read(shard);
            f(&mut table.iter());
        }
    }

    fn shard(&self, hash: u64) -> &Shard {
        // Middle bits: hashbrown uses the low bits for buckets and the top 7 for tags.
        &self.shards[(hash >> 32) as usize % SHARDS]
    }

    /// Whether the family holds a series with these (normalized) labels.
    fn holds(&self, hash: u64, labels: &[(&[u8], &[u8])]) -> bool {
        read(self.shard(hash))
            .find(hash, |s| s.matches(labels))
            .is_some()
    }
}

fn read(shard: &Shard) -> RwLockReadGuard<'_, HashTable<Arc<Series>>> {
    shard.read().unwrap_or_else(|e| e.into_inner())
}

/// A series as a query returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSnapshot {
    /// The exposed name (`_total` for counters).
    pub name: String,
    pub kind: Kind,
    pub labels: BTreeMap<String, String>,
    /// Counter total, gauge value or histogram sum.
    pub value: f64,
    /// Histogram: observations.
    pub count: u64,
}

/// How a batch refers to a family while it is checked and applied.
struct BatchFamily<'a> {
    key: &'a str,
    kind: Kind,
    help: &'a [u8],
    bounds: Cow<'a, [f64]>,
    /// `None` until the family exists in the store.
    family: Option<Arc<Family>>,
}

/// What the check found for one sample.
struct Planned {
    /// Index into the batch's families.
    slot: usize,
    hash: u64,
}

/// A checked batch.
struct Plan<'a> {
    families: Vec<BatchFamily<'a>>,
    samples: Vec<Planned>,
}

pub struct Store {
    families: DashMap<Box<str>, Arc<Family>, RandomState>,
    /// Serializes family creation (rare), so that two new families cannot collide.
    create: Mutex<()>,
    series: AtomicUsize,
    limits: Limits,
    hasher: RandomState,
}

impl Store {
    pub fn new(limits: Limits) -> Self {
        Self {
            families: DashMap::with_hasher(RandomState::default()),
            create: Mutex::new(()),
            series: AtomicUsize::new(0),
            limits,
            hasher: RandomState::default(),
        }
    }

    pub fn series_count(&self) -> usize {
        self.series.load(Ordering::Relaxed)
    }

    pub fn family_count(&self) -> usize {
        self.families.len()
    }

    /// The family of exposition name `key`.
    pub fn family(&self, key: &str) -> Option<Arc<Family>> {
        self.families.get(key).map(|f| Arc::clone(&f))
    }

    /// Every family, sorted by name (a stable exposition).
    pub fn families(&self) -> Vec<Arc<Family>> {
        let mut all: Vec<_> = self.families.iter().map(|f| Arc::clone(&f)).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Checks the whole batch, then applies it: on the first bad sample nothing changes.
    /// Normalizes the samples' labels in place.
    pub fn ingest(&self, samples: &mut [SampleView<'_>], now: Now) -> Result<Ingested, Invalid> {
        let plan = self.check(samples)?;
        Ok(self.apply_plan(plan, samples, now))
    }

    /// Phase two: applies a checked batch.
    fn apply_plan(&self, plan: Plan<'_>, samples: &[SampleView<'_>], now: Now) -> Ingested {
        let Plan {
            mut families,
            samples: planned,
        } = plan;
        let mut outcome = Ingested::default();
        for (sample, plan) in samples.iter().zip(planned) {
            match self.apply(&mut families[plan.slot], sample, plan.hash, now) {
                Ok(()) => outcome.accepted += 1,
                Err(reason) => {
                    let index = DropReason::ALL
                        .iter()
                        .position(|r| *r == reason)
                        .expect("listed");
                    outcome.dropped[index] += 1;
                }
            }
        }
        outcome
    }

    /// Phase one: every sample valid, and consistent with the store and the batch. Names
    /// are checked once per batch, labels only for series the store does not hold.
    fn check<'a>(&self, samples: &mut [SampleView<'a>]) -> Result<Plan<'a>, Invalid> {
        let mut families: Vec<BatchFamily<'a>> = Vec::new();
        let mut by_name: HashMap<&'a [u8], usize, RandomState> = HashMap::default();
        let mut by_key: HashMap<&'a str, usize, RandomState> = HashMap::default();
        let mut planned = Vec::with_capacity(samples.len());
        let mut last: Option<(&'a [u8], usize)> = None;
        for (index, sample) in samples.iter_mut().enumerate() {
            let invalid = |(field, reason, message)| Invalid {
                index,
                field,
                reason,
                message,
            };
            let kind = check_kind(sample.kind).map_err(invalid)?;
            sample.normalize_labels();
            let name = sample.name;
            let slot = match last {
                Some((seen, slot)) if seen == name => slot,
                _ => match by_name.get(name) {
                    Some(&slot) => slot,
                    None => {
                        let text = check_metric_name(name)
                            .map_err(|m| invalid(("name", RejectReason::InvalidName, m)))?;
                        let key = family_key(text, kind);
                        let slot = match by_key.get(key) {
                            Some(&slot) => slot,
                            None => {
                                let entry = self
                                    .batch_family(key, kind, sample, &families, &by_key)
                                    .map_err(|m| invalid(("name", RejectReason::Conflict, m)))?;
                                families.push(entry);
                                by_key.insert(key, families.len() - 1);
                                families.len() - 1
                            }
                        };
                        by_name.insert(name, slot);
                        slot
                    }
                },
            };
            last = Some((name, slot));
            let family = &families[slot];
            let shown = || String::from_utf8_lossy(name);
            if family.kind != kind {
                return Err(invalid((
                    "kind",
                    RejectReason::Conflict,
                    format!(
                        "metric {:?} is a {}, not a {}",
                        shown(),
                        family.kind.as_str(),
                        kind.as_str()
                    ),
                )));
            }
            if let Some(histogram) = &sample.histogram {
                if histogram.bounds.as_ref() != family.bounds.as_ref() {
                    return Err(invalid((
                        "histogram.bounds",
                        RejectReason::Conflict,
                        format!(
                            "metric {:?} has bucket bounds {:?}",
                            shown(),
                            family.bounds.as_ref()
                        ),
                    )));
                }
            }
            let hash = self.hasher.hash_one(sample.labels.as_slice());
            // Labels the store already holds were checked when their series was created.
            let held = family
                .family
                .as_ref()
                .is_some_and(|f| f.holds(hash, &sample.labels));
            if !held {
                check_labels(kind, &sample.labels).map_err(invalid)?;
            }
            check_payload(kind, sample).map_err(invalid)?;
            planned.push(Planned { slot, hash });
        }
        Ok(Plan {
            families,
            samples: planned,
        })
    }

    /// How the batch sees the family `key` that its first sample names: the store's, or a
    /// new one that must not collide with the store's or the batch's other families.
    fn batch_family<'a>(
        &self,
        key: &'a str,
        kind: Kind,
        sample: &SampleView<'a>,
        batch: &[BatchFamily<'a>],
        by_key: &HashMap<&'a str, usize, RandomState>,
    ) -> Result<BatchFamily<'a>, String> {
        if let Some(family) = self.family(key) {
            return Ok(BatchFamily {
                key,
                kind: family.kind,
                help: sample.help,
                bounds: Cow::Owned(family.bounds.to_vec()),
                family: Some(family),
            });
        }
        let kind_of = |owner: &str| {
            by_key
                .get(owner)
                .map(|&slot| (batch[slot].kind, batch[slot].key.to_string()))
                .or_else(|| self.family(owner).map(|f| (f.kind, f.name.to_string())))
        };
        if let Some(why) = collision(key, kind, kind_of) {
            return Err(format!("metric {key:?} cannot be created: {why}"));
        }
        let bounds = match (kind, &sample.histogram) {
            (Kind::Histogram, Some(h)) => h.bounds.clone(),
            (Kind::Histogram, None) => Cow::Borrowed(&DEFAULT_BUCKETS[..]),
            _ => Cow::Borrowed(&[][..]),
        };
        Ok(BatchFamily {
            key,
            kind,
            help: sample.help,
            bounds,
            family: None,
        })
    }

    /// The store's family for a batch family, created if needed; `Err` when another
    /// stream created it differently in the meantime.
    fn resolve(&self, entry: &BatchFamily<'_>) -> Result<Arc<Family>, DropReason> {
        let _creating = self.create.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(family) = self.family(entry.key) {
            return if family.kind == entry.kind && family.bounds.as_ref() == entry.bounds.as_ref() {
                Ok(family)
            } else {
                Err(DropReason::Conflict)
            };
        }
        let kind_of = |owner: &str| self.family(owner).map(|f| (f.kind, f.name.to_string()));
        if collision(entry.key, entry.kind, kind_of).is_some() {
            return Err(DropReason::Conflict);
        }
        let family = Arc::new(Family::new(
            entry.key,
            entry.kind,
            entry.help,
            &entry.bounds,
        ));
        self.families.insert(entry.key.into(), Arc::clone(&family));
        Ok(family)
    }

    /// Phase two for one sample: records into its series, created if the store does not
    /// hold it (new, or removed by expiry since the check).
    fn apply(
        &self,
        entry: &mut BatchFamily<'_>,
        sample: &SampleView<'_>,
        hash: u64,
        now: Now,
    ) -> Result<(), DropReason> {
        loop {
            let family = match &entry.family {
                Some(family) => Arc::clone(family),
                None => {
                    let family = self.resolve(entry)?;
                    entry.family = Some(Arc::clone(&family));
                    family
                }
            };
            match self.apply_to(&family, sample, hash, now) {
                // The family was emptied and removed since the batch looked it up.
                Err(None) => entry.family = None,
                Err(Some(reason)) => return Err(reason),
                Ok(()) => return Ok(()),
            }
        }
    }

    /// `Err(None)`: the family is retired, look it up again.
    fn apply_to(
        &self,
        family: &Family,
        sample: &SampleView<'_>,
        hash: u64,
        now: Now,
    ) -> Result<(), Option<DropReason>> {
        let labels = sample.labels.as_slice();
        family.learn_help(sample.help);
        let shard = family.shard(hash);
        {
            let table = read(shard);
            if let Some(series) = table.find(hash, |s| s.matches(labels)) {
                series.record(sample, &family.bounds, now);
                return Ok(());
            }
        }
        let mut table = shard.write().unwrap_or_else(|e| e.into_inner());
        if family.retired.load(Ordering::Acquire) {
            return Err(None);
        }
        if let Some(series) = table.find(hash, |s| s.matches(labels)) {
            series.record(sample, &family.bounds, now);
            return Ok(());
        }
        let within = |count: &AtomicUsize, max: usize| {
            count
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (n < max).then_some(n + 1)
                })
                .is_ok()
        };
        if !within(&family.series, self.limits.max_series_per_metric) {
            family.limit_dropped.fetch_add(1, Ordering::Relaxed);
            return Err(Some(DropReason::MetricSeriesLimit));
        }
        if !within(&self.series, self.limits.max_series) {
            family.series.fetch_sub(1, Ordering::AcqRel);
            return Err(Some(DropReason::SeriesLimit));
        }
        // Checked as UTF-8 (`check_labels`) before the batch was applied, or equal to the
        // labels of a series the store held at check time (expiry removed it since).
        let labels: Box<[(Box<str>, Box<str>)]> = labels
            .iter()
            .map(|&(k, v)| {
                let text = |b| Box::from(String::from_utf8_lossy(b));
                (text(k), text(v))
            })
            .collect();
        let series = Arc::new(Series {
            exposed_labels: exposed_labels(&labels),
            labels,
            hash,
            last_seen: AtomicU64::new(now.mono_ms),
            cells: Cells::new(family.kind, &family.bounds),
        });
        series.record(sample, &family.bounds, now);
        table.insert_unique(hash, series, |s| s.hash);
        Ok(())
    }

    /// Removes series without a sample since `now - ttl_ms`, and families left empty.
    /// Returns how many series expired.
    pub fn expire(&self, now: Now, ttl_ms: u64) -> usize {
        let cutoff = now.mono_ms.saturating_sub(ttl_ms);
        let stale = |s: &Arc<Series>| s.last_seen.load(Ordering::Relaxed) < cutoff;
        let mut expired = 0;
        for family in self.families() {
            for shard in family.shards.iter() {
                // Look under the read lock first: most sweeps find nothing to remove.
                if !read(shard).iter().any(stale) {
                    continue;
                }
                let mut table = shard.write().unwrap_or_else(|e| e.into_inner());
                let before = table.len();
                table.retain(|s| !stale(s));
                let removed = before - table.len();
                family.series.fetch_sub(removed, Ordering::AcqRel);
                self.series.fetch_sub(removed, Ordering::AcqRel);
                expired += removed;
            }
            if family.series_count() == 0 {
                self.remove_if_empty(&family);
            }
        }
        expired
    }

    fn remove_if_empty(&self, family: &Arc<Family>) {
        self.families.remove_if(family.name.as_ref(), |_, current| {
            if !Arc::ptr_eq(current, family) {
                return false;
            }
            // Every shard write-locked: no insert can be under way while we decide.
            let _guards: Vec<_> = family
                .shards
                .iter()
                .map(|s| s.write().unwrap_or_else(|e| e.into_inner()))
                .collect();
            let empty = family.series_count() == 0;
            if empty {
                family.retired.store(true, Ordering::Release);
            }
            empty
        });
    }

    /// Series of the metric `name` (every metric if empty) that carry all of `labels`.
    /// A counter is found by its name with or without `_total`.
    pub fn query(&self, name: &str, labels: &BTreeMap<String, String>) -> Vec<SeriesSnapshot> {
        let families = if name.is_empty() {
            self.families()
        } else {
            let counter = || {
                self.family(family_key(name, Kind::Counter))
                    .filter(|f| f.kind == Kind::Counter)
            };
            self.family(name).or_else(counter).into_iter().collect()
        };
        let mut out = Vec::new();
        for family in families {
            let exposed = family.sample_name();
            family.for_each_shard(|series| {
                for s in series {
                    let matches = labels.iter().all(|(k, v)| s.label(k) == Some(v.as_str()));
                    if matches {
                        let (value, count) = match &s.cells {
                            Cells::Counter(c) | Cells::Gauge(c) => (c.get(), 0),
                            Cells::Histogram(h) => {
                                let HistogramSnapshot { buckets, sum } = h.snapshot();
                                (sum, buckets.iter().sum())
                            }
                        };
                        out.push(SeriesSnapshot {
                            name: exposed.to_string(),
                            kind: family.kind,
                            labels: s
                                .labels
                                .iter()
                                .map(|(k, v)| (k.to_string(), v.to_string()))
                                .collect(),
                            value,
                            count,
                        });
                    }
                }
            });
        }
        out.sort_by(|a, b| (&a.name, &a.labels).cmp(&(&b.name, &b.labels)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::HistogramView;
    use taskloom_proto::v1::MetricKind;

    const LIMITS: Limits = Limits {
        max_series: 100,
        max_series_per_metric: 50,
    };

    fn sample<'a>(
        name: &'a str,
        kind: MetricKind,
        value: f64,
        labels: &[(&'a str, &'a str)],
    ) -> SampleView<'a> {
        SampleView::of(name, kind, value, labels)
    }

    fn ingest(store: &Store, samples: Vec<SampleView<'_>>) -> Result<Ingested, Invalid> {
        ingest_at(store, samples, Now::at(0))
    }

    fn ingest_at(
        store: &Store,
        mut samples: Vec<SampleView<'_>>,
        now: Now,
    ) -> Result<Ingested, Invalid> {
        store.ingest(&mut samples, now)
    }

    fn one(store: &Store, name: &str, labels: &[(&str, &str)]) -> SeriesSnapshot {
        let labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut found = store.query(name, &labels);
        assert_eq!(found.len(), 1, "{found:?}");
        found.remove(0)
    }

    #[test]
    fn counter_adds_gauge_sets_histogram_observes() {
        let store = Store::new(LIMITS);
        let outcome = ingest(
            &store,
            vec![
                sample("tokens_total", MetricKind::Counter, 1.0, &[("agent", "a")]),
                sample("tokens_total", MetricKind::Counter, 2.5, &[("agent", "a")]),
                sample("queue_depth", MetricKind::Gauge, 7.0, &[]),
                sample("queue_depth", MetricKind::Gauge, 3.0, &[]),
                sample("latency_seconds", MetricKind::Histogram, 0.2, &[]),
                sample("latency_seconds", MetricKind::Histogram, 0.3, &[]),
            ],
        )
        .expect("valid");
        assert_eq!(outcome.accepted, 6);
        assert_eq!(one(&store, "tokens_total", &[("agent", "a")]).value, 3.5);
        assert_eq!(one(&store, "tokens", &[]).name, "tokens_total");
        assert_eq!(one(&store, "queue_depth", &[]).value, 3.0);
        let h = one(&store, "latency_seconds", &[]);
        assert_eq!((h.value, h.count), (0.5, 2));
        assert_eq!(store.series_count(), 3);
        assert_eq!(
            store.family("latency_seconds").expect("family").bounds(),
            DEFAULT_BUCKETS
        );
    }

    #[test]
    fn series_are_keyed_by_sorted_labels_and_queried_by_equality() {
        let store = Store::new(LIMITS);
        ingest(
            &store,
            vec![
                sample("c", MetricKind::Counter, 1.0, &[("b", "2"), ("a", "1")]),
                sample("c", MetricKind::Counter, 1.0, &[("a", "1"), ("b", "2")]),
                sample("c", MetricKind::Counter, 5.0, &[("a", "9")]),
                // An empty value is no label at all.
                sample("c", MetricKind::Counter, 5.0, &[("a", "9"), ("z", "")]),
            ],
        )
        .expect("valid");
        assert_eq!(one(&store, "c", &[("b", "2")]).value, 2.0);
        assert_eq!(one(&store, "c", &[("a", "9")]).value, 10.0);
        assert_eq!(store.query("c", &BTreeMap::new()).len(), 2);
    }

    #[test]
    fn a_bad_sample_rejects_the_whole_batch_and_changes_nothing() {
        let store = Store::new(LIMITS);
        let err = ingest(
            &store,
            vec![
                sample("fine_total", MetricKind::Counter, 1.0, &[]),
                sample("g", MetricKind::Gauge, 1.0, &[("bad-label", "x")]),
            ],
        )
        .expect_err("invalid");
        assert_eq!(
            (err.path(), err.reason),
            ("samples[1].labels".to_string(), RejectReason::InvalidLabel)
        );
        assert!(err.message.contains("bad-label"), "{}", err.message);
        assert_eq!(store.series_count(), 0);
        assert_eq!(store.family_count(), 0);
    }

    #[test]
    fn a_kind_changing_for_an_existing_metric_is_refused() {
        let store = Store::new(LIMITS);
        ingest(&store, vec![sample("x", MetricKind::Gauge, 1.0, &[])]).expect("gauge");
        let err = ingest(&store, vec![sample("x", MetricKind::Histogram, 1.0, &[])])
            .expect_err("kind change");
        assert_eq!((err.field, err.reason), ("kind", RejectReason::Conflict));
        // `x_total` as a counter is the family `x` too.
        let err = ingest(
            &store,
            vec![sample("x_total", MetricKind::Counter, 1.0, &[])],
        )
        .expect_err("counter x");
        assert_eq!((err.field, err.reason), ("kind", RejectReason::Conflict));
        // Within one batch, before the metric exists.
        let err = ingest(
            &store,
            vec![
                sample("y", MetricKind::Gauge, 1.0, &[]),
                sample("y", MetricKind::Counter, 1.0, &[]),
            ],
        )
        .expect_err("kind change in a batch");
        assert_eq!(err.path(), "samples[1].kind");
        assert_eq!(one(&store, "x", &[]).value, 1.0);
        assert!(store.family("y").is_none());
    }

    #[test]
    fn names_colliding_in_the_exposition_are_refused() {
        let store = Store::new(LIMITS);
        ingest(
            &store,
            vec![
                sample("req_total", MetricKind::Counter, 1.0, &[]),
                sample("lat", MetricKind::Histogram, 1.0, &[]),
            ],
        )
        .expect("valid");
        for (name, kind) in [
            ("req_total", MetricKind::Gauge),
            ("req_created", MetricKind::Gauge),
            ("lat_count", MetricKind::Gauge),
            ("lat_bucket", MetricKind::Counter),
        ] {
            let err = ingest(&store, vec![sample(name, kind, 1.0, &[])]).expect_err(name);
            assert_eq!(err.reason, RejectReason::Conflict, "{name}");
        }
        // Two new metrics of one batch colliding with each other.
        let err = ingest(
            &store,
            vec![
                sample("new", MetricKind::Histogram, 1.0, &[]),
                sample("new_sum", MetricKind::Gauge, 1.0, &[]),
            ],
        )
        .expect_err("collision in a batch");
        assert_eq!(err.path(), "samples[1].name");
    }

    #[test]
    fn histogram_bounds_are_fixed_by_the_first_sample() {
        let store = Store::new(LIMITS);
        let aggregated = |bounds: &'static [f64], counts: &'static [u64]| SampleView {
            histogram: Some(Box::new(HistogramView {
                bounds: Cow::Borrowed(bounds),
                counts: Cow::Borrowed(counts),
                sum: 3.0,
            })),
            ..sample("h", MetricKind::Histogram, 0.0, &[])
        };
        ingest(&store, vec![aggregated(&[1.0, 2.0], &[1, 1, 0])]).expect("first");
        // Single observations fit any bounds.
        ingest(&store, vec![sample("h", MetricKind::Histogram, 5.0, &[])]).expect("observation");
        let err = ingest(&store, vec![aggregated(&[1.0], &[1, 1])]).expect_err("other bounds");
        assert_eq!(
            (err.path(), err.reason),
            ("samples[0].histogram.bounds".into(), RejectReason::Conflict)
        );
        let h = one(&store, "h", &[]);
        assert_eq!((h.value, h.count), (8.0, 3));
    }

    #[test]
    fn new_series_beyond_a_metrics_limit_are_dropped_and_counted() {
        let store = Store::new(Limits {
            max_series: 100,
            max_series_per_metric: 2,
        });
        let labels = ["0", "1", "2", "3"];
        let outcome = ingest(
            &store,
            labels
                .iter()
                .map(|i| sample("g", MetricKind::Gauge, 1.0, &[("i", i)]))
                .chain([sample("other", MetricKind::Gauge, 1.0, &[])])
                .collect(),
        )
        .expect("valid");
        assert_eq!(outcome.accepted, 3);
        assert_eq!(outcome.dropped, [2, 0, 0]);
        assert_eq!(store.family("g").expect("g").limit_dropped(), 2);
        // Existing series still take samples.
        let outcome = ingest(
            &store,
            vec![sample("g", MetricKind::Gauge, 4.0, &[("i", "0")])],
        )
        .expect("existing");
        assert_eq!(outcome.accepted, 1);
        assert_eq!(one(&store, "g", &[("i", "0")]).value, 4.0);
        assert_eq!(store.series_count(), 3);
    }

    #[test]
    fn new_series_beyond_the_store_limit_are_dropped() {
        let store = Store::new(Limits {
            max_series: 2,
            max_series_per_metric: 10,
        });
        let outcome = ingest(
            &store,
            ["a", "b", "c"]
                .iter()
                .map(|name| sample(name, MetricKind::Gauge, 1.0, &[]))
                .collect(),
        )
        .expect("valid");
        assert_eq!((outcome.accepted, outcome.dropped), (2, [0, 1, 0]));
        assert_eq!(store.series_count(), 2);
    }

    #[test]
    fn series_without_samples_expire_and_empty_metrics_go_with_them() {
        let store = Store::new(LIMITS);
        let at = |ms, samples| ingest_at(&store, samples, Now::at(ms)).expect("valid");
        at(
            0,
            vec![
                sample("g", MetricKind::Gauge, 1.0, &[("i", "old")]),
                sample("solo", MetricKind::Gauge, 1.0, &[]),
            ],
        );
        at(
            5_000,
            vec![sample("g", MetricKind::Gauge, 2.0, &[("i", "fresh")])],
        );
        assert_eq!(store.expire(Now::at(9_000), 10_000), 0);
        assert_eq!(store.expire(Now::at(12_000), 10_000), 2);
        assert_eq!(store.series_count(), 1);
        assert!(store.family("solo").is_none());
        assert_eq!(one(&store, "g", &[]).labels["i"], "fresh");
        // A sample keeps a series alive; an expired one starts again from nothing.
        at(
            14_000,
            vec![sample("g", MetricKind::Gauge, 3.0, &[("i", "fresh")])],
        );
        assert_eq!(store.expire(Now::at(20_000), 10_000), 0);
        at(20_000, vec![sample("solo", MetricKind::Gauge, 9.0, &[])]);
        assert_eq!(one(&store, "solo", &[]).value, 9.0);
        // The family removed with its last series accepts a new kind.
        assert_eq!(store.expire(Now::at(40_000), 10_000), 2);
        assert_eq!(store.family_count(), 0);
        at(40_000, vec![sample("g", MetricKind::Counter, 1.0, &[])]);
        assert_eq!(one(&store, "g", &[]).kind, Kind::Counter);
    }

    #[test]
    fn a_held_series_is_matched_by_bytes_and_its_values_still_checked() {
        let store = Store::new(LIMITS);
        let labels = [("agent", "a"), ("model", "m")];
        ingest(&store, vec![sample("g", MetricKind::Gauge, 1.0, &labels)]).expect("new");
        // Same series, labels in another order: found, so labels are not checked again...
        let reordered = [("model", "m"), ("agent", "a")];
        ingest(
            &store,
            vec![sample("g", MetricKind::Gauge, 2.0, &reordered)],
        )
        .expect("held");
        assert_eq!(store.series_count(), 1);
        // ...but the value is.
        let err = ingest(
            &store,
            vec![sample("g", MetricKind::Gauge, f64::NAN, &labels)],
        )
        .expect_err("NaN");
        assert_eq!(err.path(), "samples[0].value");
        assert_eq!(one(&store, "g", &[]).value, 2.0);
    }

    #[test]
    fn a_series_expired_between_check_and_apply_loses_no_sample() {
        let store = Store::new(LIMITS);
        let labels = [("i", "1")];
        ingest(
            &store,
            vec![sample("c_total", MetricKind::Counter, 1.0, &labels)],
        )
        .expect("new");
        let mut batch = vec![sample("c_total", MetricKind::Counter, 5.0, &labels)];
        let plan = store.check(&mut batch).expect("valid");
        assert_eq!(store.expire(Now::at(100_000), 10_000), 1);
        let outcome = store.apply_plan(plan, &batch, Now::at(100_000));
        assert_eq!(outcome.accepted, 1);
        // The series started again with the sample: nothing went to the removed one.
        assert_eq!(one(&store, "c_total", &labels).value, 5.0);
    }

    #[test]
    fn concurrent_streams_aggregate_exactly() {
        let store = Arc::new(Store::new(Limits {
            max_series: 10_000,
            max_series_per_metric: 10_000,
        }));
        let threads: u32 = 4;
        let rounds: u32 = 200;
        let series: usize = 50;
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    let names: Vec<String> = (0..series).map(|i| i.to_string()).collect();
                    for round in 0..rounds {
                        let mut batch: Vec<SampleView<'_>> = names
                            .iter()
                            .flat_map(|i| {
                                [
                                    sample(
                                        "c_total",
                                        MetricKind::Counter,
                                        1.0,
                                        &[("i", i.as_str())],
                                    ),
                                    sample("h", MetricKind::Histogram, 0.5, &[("i", i.as_str())]),
                                ]
                            })
                            .collect();
                        // A sweep meanwhile (nothing is stale) must not disturb ingestion.
                        if t == 0 && round % 10 == 0 {
                            store.expire(Now::at(1), 0);
                        }
                        store.ingest(&mut batch, Now::at(1)).expect("valid");
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.join().expect("thread");
        }
        for i in 0..series {
            let i = i.to_string();
            assert_eq!(
                one(&store, "c_total", &[("i", &i)]).value,
                f64::from(threads * rounds)
            );
            assert_eq!(
                one(&store, "h", &[("i", &i)]).count,
                u64::from(threads * rounds)
            );
        }
        assert_eq!(store.series_count(), 2 * series);
    }
}
