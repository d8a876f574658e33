//! The `/metrics` exposition in both formats a scraper may ask for: the Prometheus text
//! format (0.0.4, the default) and OpenMetrics 1.0 (`Accept: application/openmetrics-text`),
//! which also carries histogram exemplars. Written directly into one buffer, with each
//! series' label text prepared when the series was created, so 100,000 series render in
//! tens of milliseconds.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::metrics::ServiceMetrics;
use crate::sample::Kind;
use crate::series::{Cells, StoredExemplar};
use crate::store::{Family, Store};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Prometheus,
    OpenMetrics,
}

const OPENMETRICS: &str = "application/openmetrics-text";

impl Format {
    /// The format an `Accept` header prefers: OpenMetrics when it is acceptable and rated at
    /// least as high as plain text, the Prometheus text format otherwise.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let mut openmetrics_q: f32 = 0.0;
        let mut text_q: f32 = 0.0;
        for item in accept.unwrap_or("").split(',') {
            let mut parts = item.split(';');
            let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            match media.as_str() {
                OPENMETRICS => openmetrics_q = openmetrics_q.max(q),
                "text/plain" => text_q = text_q.max(q),
                _ => {}
            }
        }
        if openmetrics_q > 0.0 && openmetrics_q >= text_q {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// Writes a number as both formats accept it: integers without a fraction, `+Inf`,
/// `-Inf`, `NaN`, otherwise the shortest decimal that reads back as the same f64.
fn push_f64(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("NaN");
    } else if value.is_infinite() {
        out.push_str(if value > 0.0 { "+Inf" } else { "-Inf" });
    } else if value.fract() == 0.0 && value.abs() < 1e15 {
        out.push_str(itoa::Buffer::new().format(value as i64));
    } else {
        out.push_str(ryu::Buffer::new().format_finite(value));
    }
}

fn push_u64(out: &mut String, value: u64) {
    out.push_str(itoa::Buffer::new().format(value));
}

/// Builds one exposition.
pub struct Writer {
    out: String,
    format: Format,
    /// Reused for the start of each histogram's bucket lines.
    prefix: String,
}

impl Writer {
    pub fn new(format: Format) -> Self {
        Self::with_capacity(format, 0)
    }

    pub fn with_capacity(format: Format, bytes: usize) -> Self {
        Self {
            out: String::with_capacity(bytes),
            format,
            prefix: String::new(),
        }
    }

    /// `# HELP` and `# TYPE` of a family; `name` is the family name (a counter's without
    /// `_total`, which the Prometheus format adds and OpenMetrics does not).
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let suffix = match (self.format, kind) {
            (Format::Prometheus, Kind::Counter) => "_total",
            _ => "",
        };
        if !help.is_empty() {
            let _ = write!(self.out, "# HELP {name}{suffix} ");
            for c in help.chars() {
                match c {
                    '\\' => self.out.push_str(r"\\"),
                    '\n' => self.out.push_str(r"\n"),
                    '"' if self.format == Format::OpenMetrics => self.out.push_str("\\\""),
                    c => self.out.push(c),
                }
            }
            self.out.push('\n');
        }
        let _ = writeln!(self.out, "# TYPE {name}{suffix} {}", kind.as_str());
    }

    /// `name{labels} value`; `labels` is prepared label text without braces.
    pub fn sample(&mut self, name: &str, labels: &str, value: f64) {
        self.suffixed_sample(name, "", labels, value);
    }

    fn suffixed_sample(&mut self, name: &str, suffix: &str, labels: &str, value: f64) {
        self.out.push_str(name);
        self.out.push_str(suffix);
        if !labels.is_empty() {
            self.out.push('{');
            self.out.push_str(labels);
            self.out.push('}');
        }
        self.out.push(' ');
        push_f64(&mut self.out, value);
        self.out.push('\n');
    }

    /// The `_bucket`, `_count` and `_sum` lines of one histogram series; `le` holds the
    /// ends of its bucket lines (`le_suffixes`), `buckets` its per-bucket (not cumulative)
    /// counts. Exemplars appear in OpenMetrics only.
    pub fn histogram(
        &mut self,
        name: &str,
        labels: &str,
        le: &[String],
        buckets: impl Iterator<Item = u64>,
        sum: f64,
        exemplars: Option<&[Option<StoredExemplar>]>,
    ) {
        // `name_bucket{labels,` once per series, then one copy of it per bucket line.
        let mut prefix = std::mem::take(&mut self.prefix);
        prefix.clear();
        prefix.push_str(name);
        prefix.push_str("_bucket{");
        if !labels.is_empty() {
            prefix.push_str(labels);
            prefix.push(',');
        }
        let mut cumulative = 0;
        for (i, (suffix, count)) in le.iter().zip(buckets).enumerate() {
            cumulative += count;
            self.out.push_str(&prefix);
            self.out.push_str(suffix);
            push_u64(&mut self.out, cumulative);
            if self.format == Format::OpenMetrics {
                if let Some(Some(exemplar)) = exemplars.and_then(|e| e.get(i)) {
                    self.out.push_str(" # {trace_id=\"");
                    self.out.push_str(&exemplar.trace_id);
                    self.out.push_str("\"} ");
                    push_f64(&mut self.out, exemplar.value);
                    self.out.push(' ');
                    push_f64(&mut self.out, (exemplar.time * 1000.0).round() / 1000.0);
                }
            }
            self.out.push('\n');
        }
        self.prefix = prefix;
        self.suffixed_sample(name, "_count", labels, cumulative as f64);
        self.suffixed_sample(name, "_sum", labels, sum);
    }

    /// The ends of the bucket lines of histogram bounds, `le="0.5"} `, `+Inf` appended.
    pub fn le_suffixes(bounds: &[f64]) -> Vec<String> {
        bounds
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .map(|b| {
                let mut s = String::from("le=\"");
                push_f64(&mut s, b);
                s.push_str("\"} ");
                s
            })
            .collect()
    }

    /// The finished text (OpenMetrics ends with `# EOF`).
    pub fn finish(mut self) -> String {
        if self.format == Format::OpenMetrics {
            self.out.push_str("# EOF\n");
        }
        self.out
    }
}

/// The help of a metric whose samples brought none: the exposition always has one.
const NO_HELP: &str = "Ingested by the Taskloom metrics service; its client sent no help text.";

/// Writes one family of ingested series.
fn write_family(writer: &mut Writer, family: &Family) {
    let help = match family.help() {
        "" => NO_HELP,
        help => help,
    };
    writer.family(family.name(), family.kind(), help);
    let name = family.sample_name();
    let le = Writer::le_suffixes(family.bounds());
    family.for_each_shard(|series| {
        for s in series {
            match &s.cells {
                Cells::Counter(v) | Cells::Gauge(v) => {
                    writer.sample(&name, s.exposed_labels(), v.get())
                }
                Cells::Histogram(h) => writer.histogram(
                    &name,
                    s.exposed_labels(),
                    &le,
                    h.buckets(),
                    h.sum(),
                    h.exemplars().as_deref(),
                ),
            }
        }
    });
}

/// Writes every ingested family that holds a series.
pub fn write_store(writer: &mut Writer, store: &Store) {
    for family in store.families() {
        if family.series_count() > 0 {
            write_family(writer, &family);
        }
    }
}

/// Below this many series one thread renders the page; above, one per core, each a run of
/// families with about the same number of series.
const PARALLEL_FROM_SERIES: usize = 20_000;

/// The ingested families as `parts` runs of about equal series counts, in name order.
fn split_by_series(families: &[Arc<Family>], parts: usize) -> Vec<&[Arc<Family>]> {
    let total: usize = families.iter().map(|f| f.series_count()).sum();
    let per_part = total.div_ceil(parts.max(1)).max(1);
    let mut runs = Vec::new();
    let (mut start, mut filled) = (0, 0);
    for (i, family) in families.iter().enumerate() {
        filled += family.series_count();
        if filled >= per_part {
            runs.push(&families[start..=i]);
            (start, filled) = (i + 1, 0);
        }
    }
    if start < families.len() {
        runs.push(&families[start..]);
    }
    runs
}

/// The service's `/metrics`: its own metrics, then every ingested series.
pub struct MetricsPage {
    store: Arc<Store>,
    metrics: Arc<ServiceMetrics>,
    /// The previous page's size, so buffers are allocated once.
    last_len: AtomicUsize,
}

impl MetricsPage {
    pub fn new(store: Arc<Store>, metrics: Arc<ServiceMetrics>) -> Self {
        Self {
            store,
            metrics,
            last_len: AtomicUsize::new(0),
        }
    }

    /// Appends the ingested families to `page`, rendered by several threads when there
    /// are many (the first run straight into `page`, the others beside it).
    fn write_ingested(&self, page: &mut Writer, capacity: usize) {
        let families = self.store.families();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = if self.store.series_count() < PARALLEL_FROM_SERIES {
            1
        } else {
            cores
        };
        let runs = split_by_series(&families, threads);
        let write_run = |writer: &mut Writer, run: &[Arc<Family>]| {
            for family in run.iter().filter(|f| f.series_count() > 0) {
                write_family(writer, family);
            }
        };
        let Some((first, rest)) = runs.split_first() else {
            return;
        };
        let per_run = capacity / runs.len();
        let format = page.format;
        let others: Vec<String> = std::thread::scope(|scope| {
            let handles: Vec<_> = rest
                .iter()
                .map(|run| {
                    scope.spawn(move || {
                        let mut writer = Writer::with_capacity(format, per_run);
                        write_run(&mut writer, run);
                        writer.out
                    })
                })
                .collect();
            write_run(page, first);
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_default())
                .collect()
        });
        for text in &others {
            page.out.push_str(text);
        }
    }
}

impl taskloom_common::Exposition for MetricsPage {
    fn render(&self, accept: Option<&str>) -> (&'static str, String) {
        let started = Instant::now();
        let format = Format::negotiate(accept);
        let hint = self.last_len.load(Ordering::Relaxed);
        let mut writer = Writer::with_capacity(format, hint + hint / 8);
        self.metrics.write(&mut writer, &self.store);
        self.write_ingested(&mut writer, hint);
        let page = writer.finish();
        self.last_len.store(page.len(), Ordering::Relaxed);
        self.metrics.rendered(started.elapsed().as_secs_f64());
        (format.content_type(), page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Now;
    use crate::sample::{ExemplarView, SampleView};
    use crate::store::Limits;
    use taskloom_proto::v1::MetricKind;

    #[test]
    fn parallel_runs_cover_every_family_once_in_order() {
        let store = Store::new(Limits {
            max_series: 1000,
            max_series_per_metric: 1000,
        });
        let names: Vec<String> = (0..7).map(|i| format!("m{i}")).collect();
        let values: Vec<String> = (0..10).map(|i| i.to_string()).collect();
        let mut samples: Vec<SampleView<'_>> = names
            .iter()
            .enumerate()
            .flat_map(|(i, name)| {
                values[..=i]
                    .iter()
                    .map(move |v| SampleView::of(name, MetricKind::Gauge, 1.0, &[("v", v)]))
            })
            .collect();
        store.ingest(&mut samples, Now::at(0)).expect("valid");
        let families = store.families();
        for parts in 1..=4 {
            let runs = split_by_series(&families, parts);
            assert!(runs.len() <= parts, "{parts}: {}", runs.len());
            let order: Vec<&str> = runs
                .iter()
                .flat_map(|r| r.iter().map(|f| f.name()))
                .collect();
            assert_eq!(order, names, "{parts}");
        }
    }

    #[test]
    fn a_page_rendered_by_several_threads_holds_every_series_once() {
        use taskloom_common::Exposition;
        let store = Arc::new(Store::new(Limits {
            max_series: 100_000,
            max_series_per_metric: 100_000,
        }));
        let names: Vec<String> = (0..5).map(|i| format!("family_{i}")).collect();
        let values: Vec<String> = (0..PARALLEL_FROM_SERIES / 4)
            .map(|i| i.to_string())
            .collect();
        for name in &names {
            let mut samples: Vec<SampleView<'_>> = values
                .iter()
                .map(|v| SampleView::of(name, MetricKind::Gauge, 1.0, &[("v", v)]))
                .collect();
            store.ingest(&mut samples, Now::at(0)).expect("valid");
        }
        let page = MetricsPage::new(Arc::clone(&store), Arc::new(ServiceMetrics::default()));
        let (_, text) = page.render(None);
        for name in &names {
            let type_line = format!("# TYPE {name} gauge");
            assert_eq!(
                text.lines().filter(|l| *l == type_line).count(),
                1,
                "{name}"
            );
            let series = text
                .lines()
                .filter(|l| l.starts_with(&format!("{name}{{")))
                .count();
            assert_eq!(series, values.len(), "{name}");
        }
    }

    #[test]
    fn negotiation_follows_accept_and_q_values() {
        let prometheus_scraper = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        for (accept, want) in [
            (None, Format::Prometheus),
            (Some("*/*"), Format::Prometheus),
            (Some("text/plain"), Format::Prometheus),
            (Some(prometheus_scraper), Format::OpenMetrics),
            (Some("application/openmetrics-text"), Format::OpenMetrics),
            (
                Some("application/OpenMetrics-Text; version=1.0.0"),
                Format::OpenMetrics,
            ),
            (
                Some("text/plain;q=1, application/openmetrics-text;q=0.5"),
                Format::Prometheus,
            ),
            (Some("application/openmetrics-text;q=0"), Format::Prometheus),
        ] {
            assert_eq!(Format::negotiate(accept), want, "{accept:?}");
        }
    }

    #[test]
    fn numbers_are_written_as_both_formats_read_them() {
        let cases = [
            (3.0, "3"),
            (-2.0, "-2"),
            (0.25, "0.25"),
            (1e-7, "1e-7"),
            (1e300, "1e300"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
        ];
        for (value, want) in cases {
            let mut out = String::new();
            push_f64(&mut out, value);
            assert_eq!(out, want);
        }
    }

    fn store_with_samples() -> Store {
        let store = Store::new(Limits {
            max_series: 100,
            max_series_per_metric: 100,
        });
        let mut samples = vec![
            SampleView {
                help: b"Tokens \\ spent\nper agent",
                ..SampleView::of(
                    "tokens_total",
                    MetricKind::Counter,
                    3.0,
                    &[("agent", "a\"b\\c\nd")],
                )
            },
            SampleView {
                exemplars: [ExemplarView {
                    trace_id: b"4bf92f3577b34da6a3ce929d0e0e4736",
                    value: 0.2,
                    time: Some((1_700_000_000, 500_000_000)),
                }]
                .into_iter()
                .collect(),
                ..SampleView::of("lat_seconds", MetricKind::Histogram, 0.2, &[("agent", "a")])
            },
        ];
        store.ingest(&mut samples, Now::at(0)).expect("valid");
        store
    }

    fn render(store: &Store, format: Format) -> String {
        let mut writer = Writer::new(format);
        write_store(&mut writer, store);
        writer.finish()
    }

    #[test]
    fn prometheus_text_has_total_in_counter_metadata_and_no_exemplars() {
        let text = render(&store_with_samples(), Format::Prometheus);
        let expected = [
            "# TYPE lat_seconds histogram",
            r#"lat_seconds_bucket{agent="a",le="0.1"} 0"#,
            r#"lat_seconds_bucket{agent="a",le="0.25"} 1"#,
            r#"lat_seconds_bucket{agent="a",le="+Inf"} 1"#,
            r#"lat_seconds_count{agent="a"} 1"#,
            r#"lat_seconds_sum{agent="a"} 0.2"#,
            r"# HELP tokens_total Tokens \\ spent\nper agent",
            "# TYPE tokens_total counter",
            r#"tokens_total{agent="a\"b\\c\nd"} 3"#,
        ];
        for line in expected {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from:\n{text}"
            );
        }
        assert!(
            !text.contains("trace_id") && !text.contains("# EOF"),
            "{text}"
        );
    }

    #[test]
    fn openmetrics_has_base_counter_names_exemplars_and_eof() {
        let text = render(&store_with_samples(), Format::OpenMetrics);
        for line in [
            "# TYPE tokens counter",
            r"# HELP tokens Tokens \\ spent\nper agent",
            r#"tokens_total{agent="a\"b\\c\nd"} 3"#,
            r#"lat_seconds_bucket{agent="a",le="0.25"} 1 # {trace_id="4bf92f3577b34da6a3ce929d0e0e4736"} 0.2 1700000000.5"#,
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from:\n{text}"
            );
        }
        assert!(text.ends_with("# EOF\n"));
    }
}
