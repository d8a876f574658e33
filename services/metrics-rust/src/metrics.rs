//! Every metric of the metrics service itself, defined in one place.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::store::{Rejection, Store};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectedLabels {
    /// One of `Rejection::as_str`.
    pub reason: &'static str,
}

pub struct IngestMetrics {
    /// taskloom_metrics_samples_ingested_total
    ingested: Counter,
    /// taskloom_metrics_samples_rejected_total{reason}
    rejected: Family<RejectedLabels, Counter>,
}

impl IngestMetrics {
    pub fn register(registry: &mut Registry, store: Arc<Store>) -> Self {
        let ingested = Counter::default();
        registry.register(
            "taskloom_metrics_samples_ingested",
            "Samples accepted into the store",
            ingested.clone(),
        );
        let rejected = Family::<RejectedLabels, Counter>::default();
        registry.register(
            "taskloom_metrics_samples_rejected",
            "Samples rejected, by reason",
            rejected.clone(),
        );
        registry.register_collector(Box::new(SeriesGauge(store)));
        Self { ingested, rejected }
    }

    pub fn accepted(&self, n: u64) {
        self.ingested.inc_by(n);
    }

    pub fn rejected(&self, reason: Rejection) {
        self.rejected
            .get_or_create(&RejectedLabels {
                reason: reason.as_str(),
            })
            .inc();
    }
}

/// taskloom_metrics_series, read from the store at scrape time.
struct SeriesGauge(Arc<Store>);

impl std::fmt::Debug for SeriesGauge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SeriesGauge")
    }
}

impl Collector for SeriesGauge {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let series = ConstGauge::new(i64::try_from(self.0.series_count()).unwrap_or(i64::MAX));
        series.encode(encoder.encode_descriptor(
            "taskloom_metrics_series",
            "Ingested series held in memory",
            None,
            series.metric_type(),
        )?)
    }
}
