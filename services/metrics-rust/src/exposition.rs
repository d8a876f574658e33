//! Exposes the ingested series on the service's `/metrics`, beside its own metrics, as a
//! prometheus-client collector that reads the store at scrape time.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;

use crate::store::{Kind, SeriesValue, Store};

pub struct IngestedSeries(pub Arc<Store>);

impl std::fmt::Debug for IngestedSeries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IngestedSeries")
    }
}

/// The text format takes label values verbatim; escape as the exposition format requires.
fn escape(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Collector for IngestedSeries {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for family in self.0.families() {
            let (name, metric_type) = match family.kind {
                // The encoder appends `_total` to counter samples.
                Kind::Counter => (
                    family.name.strip_suffix("_total").unwrap_or(&family.name),
                    MetricType::Counter,
                ),
                Kind::Gauge => (family.name.as_str(), MetricType::Gauge),
                Kind::Histogram => (family.name.as_str(), MetricType::Histogram),
            };
            let series = family.series.read().unwrap_or_else(|e| e.into_inner());
            if series.is_empty() {
                continue;
            }
            let help = family.help.replace('\\', r"\\").replace('\n', "\\n");
            let mut metric_encoder = encoder.encode_descriptor(name, &help, None, metric_type)?;
            for (labels, value) in series.iter() {
                let labels: Vec<(String, String)> =
                    labels.iter().map(|(k, v)| (k.clone(), escape(v))).collect();
                let mut series_encoder = metric_encoder.encode_family(&labels)?;
                match value.as_ref() {
                    SeriesValue::Counter(c) => c.encode(series_encoder)?,
                    SeriesValue::Gauge(g) => g.encode(series_encoder)?,
                    SeriesValue::Histogram(h) => {
                        let h = h.lock().unwrap_or_else(|e| e.into_inner()).clone();
                        series_encoder
                            .encode_histogram::<NoLabelSet>(h.sum, h.count, &h.buckets, None)?;
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Sample;
    use prometheus_client::registry::Registry;
    use std::collections::BTreeMap;

    #[test]
    fn ingested_series_appear_in_the_exposition() {
        let store = Arc::new(Store::new(100));
        let samples = [
            ("tokens_total", Kind::Counter, 3.0, "a\"b"),
            ("depth", Kind::Gauge, 2.0, "q"),
            ("lat_seconds", Kind::Histogram, 0.2, "q"),
        ];
        for (name, kind, value, label) in samples {
            store
                .ingest(&Sample {
                    name: name.into(),
                    kind: Some(kind),
                    value,
                    labels: BTreeMap::from([("l".to_string(), label.to_string())]),
                    help: "Some help".into(),
                })
                .expect("ingest");
        }
        let mut registry = Registry::default();
        registry.register_collector(Box::new(IngestedSeries(store)));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        for line in [
            "# TYPE tokens counter",
            r#"tokens_total{l="a\"b"} 3.0"#,
            r#"depth{l="q"} 2.0"#,
            r#"lat_seconds_bucket{le="0.25",l="q"} 1"#,
            r#"lat_seconds_count{l="q"} 1"#,
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }
}
