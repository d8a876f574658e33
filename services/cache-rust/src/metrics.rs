//! Every metric of the cache service, defined in one place.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::l1::L1;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// get, set, delete, batch_get, batch_set
    pub op: &'static str,
    /// hit, miss (get/delete per key), ok (set), invalid, error
    pub result: &'static str,
}

pub struct CacheMetrics {
    /// taskloom_cache_requests_total{op,result}
    requests: Family<RequestLabels, Counter>,
}

impl CacheMetrics {
    pub fn register(registry: &mut Registry, l1: L1) -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "taskloom_cache_requests",
            "Cache requests by operation and result (per key for batches)",
            requests.clone(),
        );
        registry.register_collector(Box::new(L1Gauges { l1 }));
        Self { requests }
    }

    pub fn record(&self, op: &'static str, result: &'static str) {
        self.requests
            .get_or_create(&RequestLabels { op, result })
            .inc();
    }

    pub fn record_n(&self, op: &'static str, result: &'static str, n: u64) {
        if n > 0 {
            self.requests
                .get_or_create(&RequestLabels { op, result })
                .inc_by(n);
        }
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
