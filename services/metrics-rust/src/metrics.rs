//! Every metric of the metrics service itself, defined in one place and documented in
//! docs/metrics.md. They are plain atomics, written by the exposition beside the ingested
//! series.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::exposition::Writer;
use crate::sample::Kind;
use crate::series::Cells;
use crate::store::{DropReason, Ingested, Store};
use crate::validate::RejectReason;

/// Buckets of the exposition's render time, in seconds.
const RENDER_BUCKETS: [f64; 8] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0];

pub struct ServiceMetrics {
    samples_ingested: AtomicU64,
    batches_ingested: AtomicU64,
    /// Indexed like `DropReason::ALL`.
    samples_dropped: [AtomicU64; DropReason::ALL.len()],
    /// Indexed like `RejectReason::ALL`.
    batches_rejected: [AtomicU64; RejectReason::ALL.len()],
    series_expired: AtomicU64,
    ingest_streams: AtomicI64,
    render_seconds: Cells,
}

impl Default for ServiceMetrics {
    fn default() -> Self {
        Self {
            samples_ingested: AtomicU64::default(),
            batches_ingested: AtomicU64::default(),
            samples_dropped: Default::default(),
            batches_rejected: Default::default(),
            series_expired: AtomicU64::default(),
            ingest_streams: AtomicI64::default(),
            render_seconds: Cells::new(Kind::Histogram, &RENDER_BUCKETS),
        }
    }
}

/// Counts an open ingest stream while it lives.
pub struct OpenStream<'a>(&'a ServiceMetrics);

impl Drop for OpenStream<'_> {
    fn drop(&mut self) {
        self.0.ingest_streams.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ServiceMetrics {
    pub fn batch_ingested(&self, outcome: &Ingested) {
        self.batches_ingested.fetch_add(1, Ordering::Relaxed);
        self.samples_ingested
            .fetch_add(outcome.accepted, Ordering::Relaxed);
        for (counter, &n) in self.samples_dropped.iter().zip(&outcome.dropped) {
            if n > 0 {
                counter.fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    pub fn batch_rejected(&self, reason: RejectReason) {
        let index = RejectReason::ALL
            .iter()
            .position(|r| *r == reason)
            .expect("listed");
        self.batches_rejected[index].fetch_add(1, Ordering::Relaxed);
    }

    pub fn series_expired(&self, n: usize) {
        self.series_expired.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn stream_opened(&self) -> OpenStream<'_> {
        self.ingest_streams.fetch_add(1, Ordering::Relaxed);
        OpenStream(self)
    }

    pub fn rendered(&self, seconds: f64) {
        self.render_seconds
            .apply(seconds, None, &[], &RENDER_BUCKETS, 0.0);
    }

    /// Writes the service's own metrics; `store` answers the series and metric counts.
    pub fn write(&self, writer: &mut Writer, store: &Store) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed) as f64;
        let counter = |w: &mut Writer, name: &str, help: &str, value: f64| {
            w.family(name, Kind::Counter, help);
            w.sample(&format!("{name}_total"), "", value);
        };
        let gauge = |w: &mut Writer, name: &str, help: &str, value: f64| {
            w.family(name, Kind::Gauge, help);
            w.sample(name, "", value);
        };
        counter(
            writer,
            "taskloom_metrics_batches_ingested",
            "Batches applied (Ingest calls and IngestStream messages).",
            get(&self.batches_ingested),
        );
        writer.family(
            "taskloom_metrics_batches_rejected",
            Kind::Counter,
            "Batches refused whole as bad input, by the reason of their first bad sample.",
        );
        for (reason, count) in RejectReason::ALL.iter().zip(&self.batches_rejected) {
            writer.sample(
                "taskloom_metrics_batches_rejected_total",
                &format!("reason=\"{}\"", reason.as_str()),
                get(count),
            );
        }
        writer.family(
            "taskloom_metrics_cardinality_dropped_samples",
            Kind::Counter,
            "Samples dropped because their metric reached --max-series-per-metric, by metric.",
        );
        for family in store.families() {
            let dropped = family.limit_dropped();
            if dropped > 0 {
                let mut labels = String::from("metric=\"");
                crate::naming::escape_label_value(family.name(), &mut labels);
                labels.push('"');
                writer.sample(
                    "taskloom_metrics_cardinality_dropped_samples_total",
                    &labels,
                    dropped as f64,
                );
            }
        }
        gauge(
            writer,
            "taskloom_metrics_ingest_streams",
            "IngestStream calls open now.",
            self.ingest_streams.load(Ordering::Relaxed) as f64,
        );
        gauge(
            writer,
            "taskloom_metrics_metrics",
            "Metrics (families) held in memory.",
            store.family_count() as f64,
        );
        if let Cells::Histogram(render) = &self.render_seconds {
            writer.family(
                "taskloom_metrics_render_duration_seconds",
                Kind::Histogram,
                "Time to render the /metrics exposition.",
            );
            writer.histogram(
                "taskloom_metrics_render_duration_seconds",
                "",
                &Writer::le_suffixes(&RENDER_BUCKETS),
                render.buckets(),
                render.sum(),
                None,
            );
        }
        writer.family(
            "taskloom_metrics_samples_dropped",
            Kind::Counter,
            "Valid samples not stored, by reason: metric_series_limit, series_limit, conflict.",
        );
        for (reason, count) in DropReason::ALL.iter().zip(&self.samples_dropped) {
            writer.sample(
                "taskloom_metrics_samples_dropped_total",
                &format!("reason=\"{}\"", reason.as_str()),
                get(count),
            );
        }
        counter(
            writer,
            "taskloom_metrics_samples_ingested",
            "Samples accepted into the store.",
            get(&self.samples_ingested),
        );
        gauge(
            writer,
            "taskloom_metrics_series",
            "Ingested series held in memory.",
            store.series_count() as f64,
        );
        counter(
            writer,
            "taskloom_metrics_series_expired",
            "Series removed after --series-ttl without a sample.",
            get(&self.series_expired),
        );
    }
}
