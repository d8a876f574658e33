//! Every metric of the cache service, defined in one place.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::l1::L1;
use crate::tier::TierKind;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// get, set, delete, batch_get, batch_set
    pub op: &'static str,
    /// hit, miss (get/delete per key), ok (set), invalid, error
    pub result: &'static str,
    /// The tier that answered a hit: l1, l2; none for everything else.
    pub tier: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct L2Labels {
    /// get, set, delete, batch_get, batch_set, ping
    pub op: &'static str,
}

/// L2 round trips take about a millisecond; the top buckets catch timeouts.
const L2_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

pub struct CacheMetrics {
    /// taskloom_cache_requests_total{op,result,tier}
    requests: Family<RequestLabels, Counter>,
    /// taskloom_cache_l2_errors_total{op}
    l2_errors: Family<L2Labels, Counter>,
    /// taskloom_cache_l2_request_duration_seconds{op}
    l2_duration: Family<L2Labels, Histogram>,
    /// taskloom_cache_l2_coalesced_total
    l2_coalesced: Counter,
    /// taskloom_cache_invalidations_received_total
    invalidations_received: Counter,
    /// taskloom_cache_invalidation_resyncs_total
    invalidation_resyncs: Counter,
}

pub fn tier_label(tier: TierKind) -> &'static str {
    match tier {
        TierKind::L1 => "l1",
        TierKind::L2 => "l2",
    }
}

impl CacheMetrics {
    pub fn register(registry: &mut Registry, l1: L1) -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "taskloom_cache_requests",
            "Cache requests by operation, result and answering tier (per key for batches)",
            requests.clone(),
        );
        let l2_errors = Family::<L2Labels, Counter>::default();
        registry.register(
            "taskloom_cache_l2_errors",
            "Failed L2 (Redis) calls by operation; reads fall back to a miss, writes to L1 only",
            l2_errors.clone(),
        );
        let l2_duration =
            Family::<L2Labels, Histogram>::new_with_constructor(|| Histogram::new(L2_BUCKETS));
        registry.register(
            "taskloom_cache_l2_request_duration_seconds",
            "Duration of L2 (Redis) calls by operation, failed ones included",
            l2_duration.clone(),
        );
        let l2_coalesced = Counter::default();
        registry.register(
            "taskloom_cache_l2_coalesced",
            "Gets that joined another Get's in-flight L2 lookup of the same key (single-flight)",
            l2_coalesced.clone(),
        );
        let invalidations_received = Counter::default();
        registry.register(
            "taskloom_cache_invalidations_received",
            "Keys other instances wrote, dropped from this L1 (Redis pub/sub)",
            invalidations_received.clone(),
        );
        let invalidation_resyncs = Counter::default();
        registry.register(
            "taskloom_cache_invalidation_resyncs",
            "Times L1 was cleared on (re)subscribing to invalidations, which may have been missed",
            invalidation_resyncs.clone(),
        );
        registry.register_collector(Box::new(L1Gauges { l1 }));
        Self {
            requests,
            l2_errors,
            l2_duration,
            l2_coalesced,
            invalidations_received,
            invalidation_resyncs,
        }
    }

    /// A request that no tier answered (a miss, a set, an invalid request, an error).
    pub fn record(&self, op: &'static str, result: &'static str) {
        self.record_n(op, result, "none", 1);
    }

    pub fn record_hit(&self, op: &'static str, tier: TierKind) {
        self.record_n(op, "hit", tier_label(tier), 1);
    }

    pub fn record_n(&self, op: &'static str, result: &'static str, tier: &'static str, n: u64) {
        if n > 0 {
            self.requests
                .get_or_create(&RequestLabels { op, result, tier })
                .inc_by(n);
        }
    }

    pub fn l2_error(&self, op: &'static str) {
        self.l2_errors.get_or_create(&L2Labels { op }).inc();
    }

    pub fn l2_duration(&self, op: &'static str, seconds: f64) {
        self.l2_duration
            .get_or_create(&L2Labels { op })
            .observe(seconds);
    }

    pub fn l2_coalesced(&self) {
        self.l2_coalesced.inc();
    }

    pub fn invalidation_received(&self) {
        self.invalidations_received.inc();
    }

    pub fn invalidation_resync(&self) {
        self.invalidation_resyncs.inc();
    }

    /// Gets that joined an in-flight L2 lookup so far.
    pub fn l2_coalesced_count(&self) -> u64 {
        self.l2_coalesced.get()
    }
}

/// taskloom_cache_entries and taskloom_cache_size_bytes, read from L1 at scrape time.
struct L1Gauges {
    l1: L1,
}

impl std::fmt::Debug for L1Gauges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("L1Gauges")
    }
}

impl Collector for L1Gauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let entries = ConstGauge::new(i64::try_from(self.l1.entry_count()).unwrap_or(i64::MAX));
        entries.encode(encoder.encode_descriptor(
            "taskloom_cache_entries",
            "Entries in the L1 cache (approximate)",
            None,
            entries.metric_type(),
        )?)?;
        let size = ConstGauge::new(i64::try_from(self.l1.size_bytes()).unwrap_or(i64::MAX));
        size.encode(encoder.encode_descriptor(
            "taskloom_cache_size_bytes",
            "Bytes held by the L1 cache, keys and values (approximate)",
            None,
            size.metric_type(),
        )?)?;
        Ok(())
    }
}
