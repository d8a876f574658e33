//! One ingested sample as the store reads it: a view that borrows its strings, either from
//! the request bytes (the zero-copy decoder in `wire`) or from a decoded protobuf message.
//! Strings stay bytes until validation: a sample of a series the store already holds is
//! byte-for-byte one that was validated when the series was created, so it is not again.

use std::borrow::Cow;

use smallvec::SmallVec;
use taskloom_proto::v1::{MetricKind, MetricSample};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    /// The kind of a wire enum value; `None` for unspecified or unknown values.
    pub fn from_wire(value: i32) -> Option<Self> {
        match MetricKind::try_from(value).ok()? {
            MetricKind::Counter => Some(Kind::Counter),
            MetricKind::Gauge => Some(Kind::Gauge),
            MetricKind::Histogram => Some(Kind::Histogram),
            MetricKind::Unspecified => None,
        }
    }

    pub fn to_wire(self) -> MetricKind {
        match self {
            Kind::Counter => MetricKind::Counter,
            Kind::Gauge => MetricKind::Gauge,
            Kind::Histogram => MetricKind::Histogram,
        }
    }

    /// The name of the kind in the exposition's `# TYPE` line.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// Label pairs (name, value); a few inline, as nearly every sample has few.
pub type Labels<'a> = SmallVec<[(&'a [u8], &'a [u8]); 4]>;

/// Observations aggregated by the client.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HistogramView<'a> {
    pub bounds: Cow<'a, [f64]>,
    pub counts: Cow<'a, [u64]>,
    pub sum: f64,
}

/// An observation that belongs to a trace; `time` is Unix (seconds, nanos).
#[derive(Debug, Clone, PartialEq)]
pub struct ExemplarView<'a> {
    pub trace_id: &'a [u8],
    pub value: f64,
    pub time: Option<(i64, i32)>,
}

/// A sample as received, before validation. `labels` are as the wire had them until
/// `normalize_labels` sorts them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SampleView<'a> {
    pub name: &'a [u8],
    /// The raw `MetricKind` value.
    pub kind: i32,
    pub value: f64,
    pub labels: Labels<'a>,
    pub help: &'a [u8],
    /// Boxed, as most samples have none and views are moved by the thousand.
    pub histogram: Option<Box<HistogramView<'a>>>,
    pub exemplars: Vec<ExemplarView<'a>>,
}

impl<'a> SampleView<'a> {
    /// A sample from text, for tests.
    #[cfg(test)]
    pub fn of(name: &'a str, kind: MetricKind, value: f64, labels: &[(&'a str, &'a str)]) -> Self {
        SampleView {
            name: name.as_bytes(),
            kind: kind as i32,
            value,
            labels: labels
                .iter()
                .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
                .collect(),
            ..SampleView::default()
        }
    }

    /// Sorts labels by name as a series' identity needs, keeps the last of repeated names
    /// (protobuf map semantics) and drops empty values (Prometheus treats them as absent).
    pub fn normalize_labels(&mut self) {
        // Stable, so among equal names the last received stays last.
        self.labels.sort_by(|a, b| a.0.cmp(b.0));
        let mut write = 0;
        for read in 0..self.labels.len() {
            let is_last_of_name = self
                .labels
                .get(read + 1)
                .is_none_or(|next| next.0 != self.labels[read].0);
            if is_last_of_name && !self.labels[read].1.is_empty() {
                self.labels[write] = self.labels[read];
                write += 1;
            }
        }
        self.labels.truncate(write);
    }
}

impl<'a> From<&'a MetricSample> for SampleView<'a> {
    fn from(sample: &'a MetricSample) -> Self {
        SampleView {
            name: sample.name.as_bytes(),
            kind: sample.kind,
            value: sample.value,
            labels: sample
                .labels
                .iter()
                .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
                .collect(),
            help: sample.help.as_bytes(),
            histogram: sample.histogram.as_ref().map(|h| {
                Box::new(HistogramView {
                    bounds: Cow::Borrowed(&h.bounds),
                    counts: Cow::Borrowed(&h.counts),
                    sum: h.sum,
                })
            }),
            exemplars: sample
                .exemplars
                .iter()
                .map(|e| ExemplarView {
                    trace_id: e.trace_id.as_bytes(),
                    value: e.value,
                    time: e.time.map(|t| (t.seconds, t.nanos)),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_sorted_deduplicated_last_wins_and_empty_values_dropped() {
        let labels = [("b", "1"), ("a", "x"), ("c", ""), ("b", "2"), ("a", "y")];
        let mut sample = SampleView::of("m", MetricKind::Gauge, 1.0, &labels);
        sample.normalize_labels();
        let want: &[(&[u8], &[u8])] = &[(b"a", b"y"), (b"b", b"2")];
        assert_eq!(sample.labels.as_slice(), want);
    }

    #[test]
    fn wire_kinds_map_both_ways() {
        for kind in [Kind::Counter, Kind::Gauge, Kind::Histogram] {
            assert_eq!(Kind::from_wire(kind.to_wire() as i32), Some(kind));
        }
        assert_eq!(Kind::from_wire(0), None);
        assert_eq!(Kind::from_wire(42), None);
    }
}
