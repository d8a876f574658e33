//! The in-memory store of ingested series: families keyed by name in a sharded map, each
//! family's series behind its own lock, values in lock-free prometheus-client metrics.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, RwLock};

use dashmap::DashMap;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use regex::Regex;

/// Prometheus' default histogram buckets.
pub const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Names under this prefix are the service's own metrics.
const RESERVED_PREFIX: &str = "taskloom_metrics_";

static METRIC_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$").expect("valid regex"));
static LABEL_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-zA-Z_][a-zA-Z0-9_]*$").expect("valid regex"));

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One ingested observation.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    /// `None` when the client did not say.
    pub kind: Option<Kind>,
    pub value: f64,
    pub labels: BTreeMap<String, String>,
    pub help: String,
}

/// Why a sample was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    InvalidName,
    InvalidLabel,
    InvalidKind,
    InvalidValue,
    KindConflict,
    SeriesLimit,
}

impl Rejection {
    /// A bounded label value for the rejected-samples counter.
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::InvalidName => "invalid_name",
            Rejection::InvalidLabel => "invalid_label",
            Rejection::InvalidKind => "invalid_kind",
            Rejection::InvalidValue => "invalid_value",
            Rejection::KindConflict => "kind_conflict",
            Rejection::SeriesLimit => "series_limit",
        }
    }
}

/// Sorted label pairs: the identity of a series within its family.
pub type LabelSet = Vec<(String, String)>;

pub enum SeriesValue {
    Counter(Counter<f64, AtomicU64>),
    Gauge(Gauge<f64, AtomicU64>),
    Histogram(Mutex<HistogramState>),
}

/// A histogram's sum, count and per-bucket (not cumulative) counts, the last bucket
/// `f64::MAX` standing for +Inf as prometheus-client's encoder expects. Kept here rather
/// than in prometheus-client's `Histogram`, whose sum and count are not public.
#[derive(Debug, Clone)]
pub struct HistogramState {
    pub sum: f64,
    pub count: u64,
    pub buckets: Vec<(f64, u64)>,
}

impl HistogramState {
    fn new() -> Self {
        Self {
            sum: 0.0,
            count: 0,
            buckets: DEFAULT_BUCKETS
                .iter()
                .copied()
                .chain([f64::MAX])
                .map(|upper| (upper, 0))
                .collect(),
        }
    }

    fn observe(&mut self, value: f64) {
        self.sum += value;
        self.count += 1;
        if let Some(bucket) = self.buckets.iter_mut().find(|(upper, _)| value <= *upper) {
            bucket.1 += 1;
        }
    }
}

impl SeriesValue {
    fn new(kind: Kind) -> Self {
        match kind {
            Kind::Counter => Self::Counter(Counter::default()),
            Kind::Gauge => Self::Gauge(Gauge::default()),
            Kind::Histogram => Self::Histogram(Mutex::new(HistogramState::new())),
        }
    }

    fn apply(&self, value: f64) {
        match self {
            Self::Counter(c) => {
                c.inc_by(value);
            }
            Self::Gauge(g) => {
                g.set(value);
            }
            Self::Histogram(h) => h.lock().unwrap_or_else(|e| e.into_inner()).observe(value),
        }
    }

    /// Counter total, gauge value or histogram sum, and the histogram's count.
    pub fn value_and_count(&self) -> (f64, u64) {
        match self {
            Self::Counter(c) => (c.get(), 0),
            Self::Gauge(g) => (g.get(), 0),
            Self::Histogram(h) => {
                let h = h.lock().unwrap_or_else(|e| e.into_inner());
                (h.sum, h.count)
            }
        }
    }
}

/// All series of one metric name.
pub struct Family {
    /// The name as first ingested (a counter may carry `_total`).
    pub name: String,
    pub kind: Kind,
    pub help: String,
    pub series: RwLock<HashMap<LabelSet, Arc<SeriesValue>>>,
}

/// A series as a query returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSnapshot {
    pub name: String,
    pub kind: Kind,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
    pub count: u64,
}

pub struct Store {
    /// Keyed by exposition base name (counters without `_total`), so that names that
    /// would collide in the exposition are one family.
    families: DashMap<String, Arc<Family>>,
    series: AtomicUsize,
    max_series: usize,
}

/// The family key of a metric name: counters are exposed as `<base>_total`.
fn family_key(name: &str, kind: Kind) -> &str {
    match kind {
        Kind::Counter => name.strip_suffix("_total").unwrap_or(name),
        _ => name,
    }
}

impl Store {
    pub fn new(max_series: usize) -> Self {
        Self {
            families: DashMap::new(),
            series: AtomicUsize::new(0),
            max_series,
        }
    }

    pub fn series_count(&self) -> usize {
        self.series.load(Ordering::Relaxed)
    }

    /// Validates and applies one sample.
    pub fn ingest(&self, sample: &Sample) -> Result<(), Rejection> {
        let kind = validate(sample)?;
        let key = family_key(&sample.name, kind);
        let family = match self.families.get(key) {
            Some(f) => Arc::clone(&f),
            None if self.collides_in_exposition(&sample.name, kind) => {
                return Err(Rejection::KindConflict);
            }
            None => Arc::clone(&self.families.entry(key.to_string()).or_insert_with(|| {
                Arc::new(Family {
                    name: sample.name.clone(),
                    kind,
                    help: sample.help.clone(),
                    series: RwLock::new(HashMap::new()),
                })
            })),
        };
        if family.kind != kind {
            return Err(Rejection::KindConflict);
        }
        let labels: LabelSet = sample
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let existing = family
            .series
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&labels)
            .cloned();
        let series = match existing {
            Some(s) => s,
            None => {
                let mut all = family.series.write().unwrap_or_else(|e| e.into_inner());
                match all.get(&labels) {
                    Some(s) => Arc::clone(s),
                    None => {
                        self.series
                            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                                (n < self.max_series).then_some(n + 1)
                            })
                            .map_err(|_| Rejection::SeriesLimit)?;
                        let s = Arc::new(SeriesValue::new(kind));
                        all.insert(labels, Arc::clone(&s));
                        s
                    }
                }
            }
        };
        series.apply(sample.value);
        Ok(())
    }

    /// Whether a new family would be exposed under the name of another one: a counter
    /// `x` (exposed as `x_total`) and a gauge or histogram `x_total`.
    fn collides_in_exposition(&self, name: &str, kind: Kind) -> bool {
        match kind {
            Kind::Counter => {
                let base = family_key(name, Kind::Counter);
                self.families.contains_key(&format!("{base}_total"))
            }
            _ => name
                .strip_suffix("_total")
                .and_then(|base| self.families.get(base))
                .is_some_and(|f| f.kind == Kind::Counter),
        }
    }

    /// Every family, sorted by name (for a stable exposition).
    pub fn families(&self) -> Vec<Arc<Family>> {
        let mut all: Vec<_> = self
            .families
            .iter()
            .map(|f| Arc::clone(f.value()))
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Series of the family `name` (every family if empty) carrying all of `labels`.
    pub fn query(&self, name: &str, labels: &BTreeMap<String, String>) -> Vec<SeriesSnapshot> {
        let families = if name.is_empty() {
            self.families()
        } else {
            let by_key = self.families.get(name).map(|f| Arc::clone(&f));
            let by_counter_key = || {
                self.families
                    .get(family_key(name, Kind::Counter))
                    .map(|f| Arc::clone(&f))
                    .filter(|f| f.kind == Kind::Counter)
            };
            by_key.or_else(by_counter_key).into_iter().collect()
        };
        let mut out = Vec::new();
        for family in families {
            let series = family.series.read().unwrap_or_else(|e| e.into_inner());
            for (set, value) in series.iter() {
                let matches = labels
                    .iter()
                    .all(|(k, v)| set.iter().any(|(sk, sv)| sk == k && sv == v));
                if matches {
                    let (value, count) = value.value_and_count();
                    out.push(SeriesSnapshot {
                        name: family.name.clone(),
                        kind: family.kind,
                        labels: set.iter().cloned().collect(),
                        value,
                        count,
                    });
                }
            }
        }
        out.sort_by(|a, b| (&a.name, &a.labels).cmp(&(&b.name, &b.labels)));
        out
    }
}

fn validate(sample: &Sample) -> Result<Kind, Rejection> {
    if !METRIC_NAME.is_match(&sample.name) || sample.name.starts_with(RESERVED_PREFIX) {
        return Err(Rejection::InvalidName);
    }
    let kind = sample.kind.ok_or(Rejection::InvalidKind)?;
    for name in sample.labels.keys() {
        let reserved = name.starts_with("__") || (kind == Kind::Histogram && name == "le");
        if !LABEL_NAME.is_match(name) || reserved {
            return Err(Rejection::InvalidLabel);
        }
    }
    let valid_value = match kind {
        Kind::Counter => sample.value.is_finite() && sample.value >= 0.0,
        Kind::Gauge => !sample.value.is_nan(),
        Kind::Histogram => !sample.value.is_nan(),
    };
    if !valid_value {
        return Err(Rejection::InvalidValue);
    }
    Ok(kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str, kind: Kind, value: f64, labels: &[(&str, &str)]) -> Sample {
        Sample {
            name: name.into(),
            kind: Some(kind),
            value,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            help: String::new(),
        }
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
        let store = Store::new(100);
        for v in [1.0, 2.5] {
            store
                .ingest(&sample("tokens_total", Kind::Counter, v, &[("agent", "a")]))
                .expect("counter");
        }
        for v in [7.0, 3.0] {
            store
                .ingest(&sample("queue_depth", Kind::Gauge, v, &[]))
                .expect("gauge");
        }
        for v in [0.2, 0.3] {
            store
                .ingest(&sample("latency_seconds", Kind::Histogram, v, &[]))
                .expect("histogram");
        }
        assert_eq!(one(&store, "tokens_total", &[("agent", "a")]).value, 3.5);
        assert_eq!(one(&store, "queue_depth", &[]).value, 3.0);
        let h = one(&store, "latency_seconds", &[]);
        assert_eq!((h.value, h.count), (0.5, 2));
        assert_eq!(store.series_count(), 3);
    }

    #[test]
    fn series_are_keyed_by_sorted_labels_and_queried_by_equality() {
        let store = Store::new(100);
        store
            .ingest(&sample("c", Kind::Counter, 1.0, &[("b", "2"), ("a", "1")]))
            .expect("first");
        store
            .ingest(&sample("c", Kind::Counter, 1.0, &[("a", "1"), ("b", "2")]))
            .expect("same series");
        store
            .ingest(&sample("c", Kind::Counter, 5.0, &[("a", "9")]))
            .expect("other series");
        assert_eq!(one(&store, "c", &[("b", "2")]).value, 2.0);
        assert_eq!(store.query("c", &BTreeMap::new()).len(), 2);
        assert!(store
            .query("c", &BTreeMap::from([("a".into(), "x".into())]))
            .is_empty());
    }

    #[test]
    fn invalid_samples_are_rejected_and_change_nothing() {
        let store = Store::new(100);
        let cases = [
            (
                sample("1bad", Kind::Gauge, 1.0, &[]),
                Rejection::InvalidName,
            ),
            (
                sample("taskloom_metrics_series", Kind::Gauge, 1.0, &[]),
                Rejection::InvalidName,
            ),
            (
                sample("g", Kind::Gauge, 1.0, &[("bad-label", "x")]),
                Rejection::InvalidLabel,
            ),
            (
                sample("g", Kind::Gauge, 1.0, &[("__name__", "x")]),
                Rejection::InvalidLabel,
            ),
            (
                sample("h", Kind::Histogram, 1.0, &[("le", "1")]),
                Rejection::InvalidLabel,
            ),
            (
                sample("c", Kind::Counter, -1.0, &[]),
                Rejection::InvalidValue,
            ),
            (
                sample("c", Kind::Counter, f64::NAN, &[]),
                Rejection::InvalidValue,
            ),
        ];
        for (s, want) in cases {
            assert_eq!(store.ingest(&s), Err(want), "{s:?}");
        }
        let mut no_kind = sample("g", Kind::Gauge, 1.0, &[]);
        no_kind.kind = None;
        assert_eq!(store.ingest(&no_kind), Err(Rejection::InvalidKind));
        assert_eq!(store.series_count(), 0);
        assert!(store.families().is_empty());
    }

    #[test]
    fn kind_conflict_is_rejected() {
        let store = Store::new(100);
        store
            .ingest(&sample("x", Kind::Gauge, 1.0, &[]))
            .expect("gauge");
        assert_eq!(
            store.ingest(&sample("x", Kind::Histogram, 1.0, &[])),
            Err(Rejection::KindConflict)
        );
        // `x_total` as a counter is exposed as `x`'s family too.
        assert_eq!(
            store.ingest(&sample("x_total", Kind::Counter, 1.0, &[])),
            Err(Rejection::KindConflict)
        );
        assert_eq!(one(&store, "x", &[]).value, 1.0);
        store
            .ingest(&sample("y_total", Kind::Counter, 1.0, &[]))
            .expect("counter");
        assert_eq!(
            store.ingest(&sample("y_total", Kind::Gauge, 1.0, &[])),
            Err(Rejection::KindConflict)
        );
    }

    #[test]
    fn new_series_beyond_the_limit_are_rejected() {
        let store = Store::new(2);
        for i in 0..2 {
            store
                .ingest(&sample("g", Kind::Gauge, 1.0, &[("i", &i.to_string())]))
                .expect("within limit");
        }
        assert_eq!(
            store.ingest(&sample("g", Kind::Gauge, 1.0, &[("i", "2")])),
            Err(Rejection::SeriesLimit)
        );
        // Existing series still take samples.
        store
            .ingest(&sample("g", Kind::Gauge, 4.0, &[("i", "0")]))
            .expect("existing series");
        assert_eq!(store.series_count(), 2);
    }
}
