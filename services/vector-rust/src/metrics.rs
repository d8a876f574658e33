//! Every metric of the vector service, defined in one place.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::store::Store;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The gRPC method in snake case, e.g. `search`.
    pub op: &'static str,
    /// ok or error
    pub result: &'static str,
}

pub struct VectorMetrics {
    /// taskloom_vector_requests_total{op,result}
    requests: Family<RequestLabels, Counter>,
}

impl VectorMetrics {
    pub fn register(registry: &mut Registry, store: Arc<Store>) -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "taskloom_vector_requests",
            "Vector service requests by operation and result",
            requests.clone(),
        );
        registry.register_collector(Box::new(StoreGauges(store)));
        Self { requests }
    }

    pub fn record(&self, op: &'static str, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.requests
            .get_or_create(&RequestLabels { op, result })
            .inc();
    }
}

/// taskloom_vector_collections, taskloom_vector_points and taskloom_vector_memory_bytes,
/// read at scrape time.
struct StoreGauges(Arc<Store>);

impl std::fmt::Debug for StoreGauges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreGauges")
    }
}

impl Collector for StoreGauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let (collections, points) = self.0.totals();
        let bytes = self.0.used_bytes();
        for (name, help, value) in [
            (
                "taskloom_vector_collections",
                "Collections held",
                collections,
            ),
            (
                "taskloom_vector_points",
                "Points held across collections",
                points,
            ),
            (
                "taskloom_vector_memory_bytes",
                "Estimated bytes held by vectors, graph links, ids and payloads",
                bytes,
            ),
        ] {
            let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        Ok(())
    }
}
