//! The rules one sample must meet on its own (names, kind, values, limits from the proto's
//! `MetricSampleLimit`), checked before a batch touches the store.

use taskloom_proto::v1::MetricSampleLimit;

use crate::sample::{Kind, SampleView};

/// Names under this prefix are the service's own metrics.
pub const RESERVED_PREFIX: &str = "taskloom_metrics_";

pub const MAX_NAME_BYTES: usize = MetricSampleLimit::MaxNameBytes as usize;
pub const MAX_LABELS: usize = MetricSampleLimit::MaxLabels as usize;
pub const MAX_LABEL_VALUE_BYTES: usize = MetricSampleLimit::MaxLabelValueBytes as usize;
pub const MAX_HELP_BYTES: usize = MetricSampleLimit::MaxHelpBytes as usize;
pub const MAX_HISTOGRAM_BOUNDS: usize = MetricSampleLimit::MaxHistogramBounds as usize;
pub const MAX_EXEMPLARS: usize = MetricSampleLimit::MaxExemplars as usize;

/// Why a batch was refused, as the label of the service's rejected-batches counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    Malformed,
    InvalidName,
    InvalidKind,
    InvalidLabel,
    InvalidValue,
    InvalidHistogram,
    InvalidExemplar,
    /// The metric exists with another kind or other histogram bounds, or its exposed
    /// names would collide with another metric's.
    Conflict,
}

impl RejectReason {
    pub const ALL: [RejectReason; 8] = [
        RejectReason::Malformed,
        RejectReason::InvalidName,
        RejectReason::InvalidKind,
        RejectReason::InvalidLabel,
        RejectReason::InvalidValue,
        RejectReason::InvalidHistogram,
        RejectReason::InvalidExemplar,
        RejectReason::Conflict,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Malformed => "malformed",
            RejectReason::InvalidName => "invalid_name",
            RejectReason::InvalidKind => "invalid_kind",
            RejectReason::InvalidLabel => "invalid_label",
            RejectReason::InvalidValue => "invalid_value",
            RejectReason::InvalidHistogram => "invalid_histogram",
            RejectReason::InvalidExemplar => "invalid_exemplar",
            RejectReason::Conflict => "conflict",
        }
    }
}

/// The first bad sample of a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid {
    /// Position of the sample in its batch.
    pub index: usize,
    /// The field within the sample (`name`, `labels`, `histogram.bounds`, ...).
    pub field: &'static str,
    pub reason: RejectReason,
    pub message: String,
}

impl Invalid {
    /// The field path as `google.rpc.BadRequest` names it: `samples[3].name`.
    pub fn path(&self) -> String {
        format!("samples[{}].{}", self.index, self.field)
    }
}

/// What is wrong with one sample: field, reason, message.
pub type Problem = (&'static str, RejectReason, String);

fn problem(field: &'static str, reason: RejectReason, message: String) -> Problem {
    (field, reason, message)
}

/// The text of a name or value for a message, whatever its bytes.
fn text(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

/// Checks a whole sample whose labels are normalized; returns its kind. The store runs the
/// same checks in parts: the name once per batch, the labels when the series is new.
pub fn check_sample(sample: &SampleView<'_>) -> Result<Kind, Problem> {
    check_metric_name(sample.name).map_err(|m| problem("name", RejectReason::InvalidName, m))?;
    let kind = check_kind(sample.kind)?;
    check_labels(kind, &sample.labels)?;
    check_payload(kind, sample)?;
    Ok(kind)
}

pub fn check_kind(kind: i32) -> Result<Kind, Problem> {
    Kind::from_wire(kind).ok_or_else(|| {
        problem(
            "kind",
            RejectReason::InvalidKind,
            format!(
                "kind {kind} is not METRIC_KIND_COUNTER, METRIC_KIND_GAUGE or METRIC_KIND_HISTOGRAM"
            ),
        )
    })
}

/// The labels that identify a new series: count, names, values.
pub fn check_labels(kind: Kind, labels: &[(&[u8], &[u8])]) -> Result<(), Problem> {
    if labels.len() > MAX_LABELS {
        return Err(problem(
            "labels",
            RejectReason::InvalidLabel,
            format!("{} labels; at most {MAX_LABELS} are allowed", labels.len()),
        ));
    }
    for &(name, value) in labels {
        check_label(kind, name, value)
            .map_err(|m| problem("labels", RejectReason::InvalidLabel, m))?;
    }
    Ok(())
}

/// What every sample carries besides its identity: help, value, histogram, exemplars.
pub fn check_payload(kind: Kind, sample: &SampleView<'_>) -> Result<(), Problem> {
    if !sample.help.is_empty()
        && (sample.help.len() > MAX_HELP_BYTES || std::str::from_utf8(sample.help).is_err())
    {
        return Err(problem(
            "help",
            RejectReason::InvalidValue,
            format!("help must be UTF-8 of at most {MAX_HELP_BYTES} bytes"),
        ));
    }
    check_value(kind, sample)?;
    check_exemplars(kind, sample)
}

/// A Prometheus metric name outside the service's own namespace, as text (its characters
/// are ASCII, so a valid name is valid UTF-8).
pub fn check_metric_name(name: &[u8]) -> Result<&str, String> {
    let valid_start = |b: u8| b.is_ascii_alphabetic() || b == b'_' || b == b':';
    let valid_rest = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b':';
    match name.split_first() {
        None => Err("metric name is empty".into()),
        _ if name.len() > MAX_NAME_BYTES => {
            Err(format!("metric name is longer than {MAX_NAME_BYTES} bytes"))
        }
        Some((&first, rest)) if !valid_start(first) || !rest.iter().all(|&b| valid_rest(b)) => {
            Err(format!(
                "metric name {:?} must match [a-zA-Z_:][a-zA-Z0-9_:]*",
                text(name)
            ))
        }
        _ if name.starts_with(RESERVED_PREFIX.as_bytes()) => Err(format!(
            "metric names starting {RESERVED_PREFIX:?} are the metrics service's own"
        )),
        _ => std::str::from_utf8(name).map_err(|_| "metric name is not UTF-8".into()),
    }
}

fn check_label(kind: Kind, name: &[u8], value: &[u8]) -> Result<(), String> {
    let valid = match name.split_first() {
        Some((&first, rest)) => {
            (first.is_ascii_alphabetic() || first == b'_')
                && rest.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'_')
        }
        None => false,
    };
    let shown = text(name);
    if !valid || name.len() > MAX_NAME_BYTES {
        return Err(format!(
            "label name {shown:?} must match [a-zA-Z_][a-zA-Z0-9_]* and be at most {MAX_NAME_BYTES} bytes"
        ));
    }
    if name.starts_with(b"__") {
        return Err(format!(
            "label name {shown:?}: names starting \"__\" are reserved"
        ));
    }
    if kind == Kind::Histogram && name == b"le" {
        return Err("label name \"le\" is reserved for histogram buckets".into());
    }
    if value.len() > MAX_LABEL_VALUE_BYTES {
        return Err(format!(
            "label {shown:?}: value longer than {MAX_LABEL_VALUE_BYTES} bytes"
        ));
    }
    if std::str::from_utf8(value).is_err() {
        return Err(format!("label {shown:?}: value is not valid UTF-8"));
    }
    Ok(())
}

fn check_value(kind: Kind, sample: &SampleView<'_>) -> Result<(), Problem> {
    let value = sample.value;
    let invalid = |message: &str| problem("value", RejectReason::InvalidValue, message.into());
    match (kind, &sample.histogram) {
        (Kind::Counter, _) if !(value.is_finite() && value >= 0.0) => {
            return Err(invalid(&format!(
                "a counter increment must be finite and >= 0, not {value}"
            )))
        }
        (Kind::Gauge, _) if value.is_nan() => return Err(invalid("a gauge value must not be NaN")),
        (Kind::Histogram, None) if !value.is_finite() => {
            return Err(invalid(&format!(
                "a histogram observation must be finite, not {value}"
            )))
        }
        (Kind::Histogram, Some(_)) if value != 0.0 => {
            return Err(invalid("value must be 0 when histogram is set"))
        }
        (Kind::Counter | Kind::Gauge, Some(_)) => {
            return Err(problem(
                "histogram",
                RejectReason::InvalidHistogram,
                "only histogram samples carry histogram data".into(),
            ))
        }
        _ => {}
    }
    let Some(histogram) = &sample.histogram else {
        return Ok(());
    };
    let bad = |field, message: String| problem(field, RejectReason::InvalidHistogram, message);
    let bounds = histogram.bounds.as_ref();
    if bounds.len() > MAX_HISTOGRAM_BOUNDS {
        return Err(bad(
            "histogram.bounds",
            format!("at most {MAX_HISTOGRAM_BOUNDS} bounds are allowed"),
        ));
    }
    if bounds.iter().any(|b| !b.is_finite()) || bounds.windows(2).any(|w| w[0] >= w[1]) {
        return Err(bad(
            "histogram.bounds",
            "bounds must be finite and strictly increasing (+Inf is implied)".into(),
        ));
    }
    if histogram.counts.len() != bounds.len() + 1 {
        return Err(bad(
            "histogram.counts",
            format!(
                "{} counts for {} bounds; there must be one per bound plus one for +Inf",
                histogram.counts.len(),
                bounds.len()
            ),
        ));
    }
    if histogram
        .counts
        .iter()
        .try_fold(0u64, |total, &c| total.checked_add(c))
        .is_none()
    {
        return Err(bad("histogram.counts", "counts overflow".into()));
    }
    if !histogram.sum.is_finite() {
        return Err(bad("histogram.sum", "sum must be finite".into()));
    }
    Ok(())
}

fn check_exemplars(kind: Kind, sample: &SampleView<'_>) -> Result<(), Problem> {
    if sample.exemplars.is_empty() {
        return Ok(());
    }
    let bad = |field, message: String| problem(field, RejectReason::InvalidExemplar, message);
    if kind != Kind::Histogram {
        return Err(bad(
            "exemplars",
            "only histogram samples carry exemplars".into(),
        ));
    }
    if sample.exemplars.len() > MAX_EXEMPLARS {
        return Err(bad(
            "exemplars",
            format!("at most {MAX_EXEMPLARS} exemplars are allowed"),
        ));
    }
    for exemplar in &sample.exemplars {
        if !is_trace_id(exemplar.trace_id) {
            return Err(bad(
                "exemplars.trace_id",
                format!(
                    "trace id {:?} is not 32 lowercase hex digits, not all zero",
                    text(exemplar.trace_id)
                ),
            ));
        }
        if !exemplar.value.is_finite() {
            return Err(bad("exemplars.value", "value must be finite".into()));
        }
        if let Some((seconds, nanos)) = exemplar.time {
            if seconds < 0 || !(0..1_000_000_000).contains(&nanos) {
                return Err(bad(
                    "exemplars.time",
                    "time must be after 1970 with nanos in [0, 1e9)".into(),
                ));
            }
        }
    }
    Ok(())
}

/// A W3C trace id (ASCII, so valid UTF-8).
pub fn is_trace_id(id: &[u8]) -> bool {
    id.len() == 32
        && id
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
        && id.iter().any(|&b| b != b'0')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{ExemplarView, HistogramView};
    use std::borrow::Cow;
    use taskloom_proto::v1::MetricKind;

    fn sample(name: &str, kind: MetricKind, value: f64) -> SampleView<'_> {
        SampleView::of(name, kind, value, &[])
    }

    fn field_and_reason(sample: &SampleView<'_>) -> (&'static str, RejectReason) {
        let (field, reason, _) = check_sample(sample).expect_err("invalid");
        (field, reason)
    }

    #[test]
    fn valid_samples_pass() {
        let mut histogram = sample("lat_seconds", MetricKind::Histogram, 0.0);
        histogram.histogram = Some(Box::new(HistogramView {
            bounds: Cow::Owned(vec![0.1, 1.0]),
            counts: Cow::Owned(vec![1, 2, 3]),
            sum: 4.0,
        }));
        histogram.exemplars.push(ExemplarView {
            trace_id: b"4bf92f3577b34da6a3ce929d0e0e4736",
            value: 0.05,
            time: Some((1_700_000_000, 0)),
        });
        histogram.labels.push((b"agent", b"a"));
        for (s, kind) in [
            (sample("c_total", MetricKind::Counter, 0.0), Kind::Counter),
            (
                sample("ns:g", MetricKind::Gauge, f64::NEG_INFINITY),
                Kind::Gauge,
            ),
            (histogram, Kind::Histogram),
        ] {
            assert_eq!(check_sample(&s), Ok(kind));
        }
    }

    #[test]
    fn each_rule_names_its_field() {
        let long_name = "n".repeat(MAX_NAME_BYTES + 1);
        let cases: Vec<(SampleView<'_>, (&str, RejectReason))> = vec![
            (
                sample("", MetricKind::Gauge, 1.0),
                ("name", RejectReason::InvalidName),
            ),
            (
                sample("1x", MetricKind::Gauge, 1.0),
                ("name", RejectReason::InvalidName),
            ),
            (
                sample("a-b", MetricKind::Gauge, 1.0),
                ("name", RejectReason::InvalidName),
            ),
            (
                sample(&long_name, MetricKind::Gauge, 1.0),
                ("name", RejectReason::InvalidName),
            ),
            (
                sample("taskloom_metrics_series", MetricKind::Gauge, 1.0),
                ("name", RejectReason::InvalidName),
            ),
            (
                sample("g", MetricKind::Unspecified, 1.0),
                ("kind", RejectReason::InvalidKind),
            ),
            (
                SampleView {
                    kind: 9,
                    ..sample("g", MetricKind::Gauge, 1.0)
                },
                ("kind", RejectReason::InvalidKind),
            ),
            (
                sample("c", MetricKind::Counter, -1.0),
                ("value", RejectReason::InvalidValue),
            ),
            (
                sample("c", MetricKind::Counter, f64::INFINITY),
                ("value", RejectReason::InvalidValue),
            ),
            (
                sample("g", MetricKind::Gauge, f64::NAN),
                ("value", RejectReason::InvalidValue),
            ),
            (
                sample("h", MetricKind::Histogram, f64::NAN),
                ("value", RejectReason::InvalidValue),
            ),
        ];
        for (s, want) in cases {
            assert_eq!(field_and_reason(&s), want, "{s:?}");
        }
    }

    #[test]
    fn label_rules() {
        let long_value = "v".repeat(MAX_LABEL_VALUE_BYTES + 1);
        type Label<'a> = (&'a [u8], &'a [u8]);
        let labels: [(MetricKind, Label<'_>); 6] = [
            (MetricKind::Gauge, (b"bad-name", b"x")),
            (MetricKind::Gauge, (b"9a", b"x")),
            (MetricKind::Gauge, (b"__name__", b"x")),
            (MetricKind::Histogram, (b"le", b"1")),
            (MetricKind::Gauge, (b"ok", long_value.as_bytes())),
            (MetricKind::Gauge, (b"ok", b"\xff\xfe")),
        ];
        for (kind, label) in labels {
            let mut s = sample("m", kind, 1.0);
            s.labels.push(label);
            assert_eq!(
                field_and_reason(&s),
                ("labels", RejectReason::InvalidLabel),
                "{label:?}"
            );
        }
        let names: Vec<String> = (0..=MAX_LABELS).map(|i| format!("l{i}")).collect();
        let mut s = sample("m", MetricKind::Gauge, 1.0);
        s.labels = names.iter().map(|n| (n.as_bytes(), &b"x"[..])).collect();
        assert_eq!(field_and_reason(&s), ("labels", RejectReason::InvalidLabel));
        let mut bad_help = sample("m", MetricKind::Gauge, 1.0);
        bad_help.help = b"\xff";
        assert_eq!(
            field_and_reason(&bad_help),
            ("help", RejectReason::InvalidValue)
        );
    }

    #[test]
    fn histogram_data_rules() {
        let with = |bounds: Vec<f64>, counts: Vec<u64>, sum: f64, value: f64| {
            let mut s = sample("h", MetricKind::Histogram, value);
            s.histogram = Some(Box::new(HistogramView {
                bounds: Cow::Owned(bounds),
                counts: Cow::Owned(counts),
                sum,
            }));
            field_and_reason(&s)
        };
        let bad = RejectReason::InvalidHistogram;
        assert_eq!(
            with(vec![1.0, 1.0], vec![0, 0, 0], 0.0, 0.0),
            ("histogram.bounds", bad)
        );
        assert_eq!(
            with(vec![f64::INFINITY], vec![0, 0], 0.0, 0.0),
            ("histogram.bounds", bad)
        );
        assert_eq!(
            with(vec![1.0], vec![0], 0.0, 0.0),
            ("histogram.counts", bad)
        );
        assert_eq!(
            with(vec![1.0], vec![u64::MAX, 1], 0.0, 0.0),
            ("histogram.counts", bad)
        );
        assert_eq!(
            with(vec![1.0], vec![0, 0], f64::NAN, 0.0),
            ("histogram.sum", bad)
        );
        assert_eq!(
            with(vec![1.0], vec![0, 0], 0.0, 2.0),
            ("value", RejectReason::InvalidValue)
        );
        let mut counter = sample("c", MetricKind::Counter, 1.0);
        counter.histogram = Some(Box::new(HistogramView::default()));
        assert_eq!(field_and_reason(&counter), ("histogram", bad));
    }

    #[test]
    fn exemplar_rules() {
        let with = |kind: MetricKind, trace_id: &'static [u8], value: f64, time| {
            let mut s = sample("h", kind, 1.0);
            s.exemplars.push(ExemplarView {
                trace_id,
                value,
                time,
            });
            field_and_reason(&s)
        };
        let good_id: &[u8] = b"4bf92f3577b34da6a3ce929d0e0e4736";
        let bad = RejectReason::InvalidExemplar;
        assert_eq!(
            with(MetricKind::Counter, good_id, 1.0, None),
            ("exemplars", bad)
        );
        let bad_ids: [&[u8]; 3] = [
            b"",
            b"00000000000000000000000000000000",
            b"4BF92F3577B34DA6A3CE929D0E0E4736",
        ];
        for id in bad_ids {
            assert_eq!(
                with(MetricKind::Histogram, id, 1.0, None),
                ("exemplars.trace_id", bad)
            );
        }
        assert_eq!(
            with(MetricKind::Histogram, good_id, f64::NAN, None),
            ("exemplars.value", bad)
        );
        assert_eq!(
            with(
                MetricKind::Histogram,
                good_id,
                1.0,
                Some((1, 1_000_000_000))
            ),
            ("exemplars.time", bad)
        );
    }
}
