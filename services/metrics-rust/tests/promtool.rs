//! The Prometheus text exposition passes `promtool check metrics` (Prometheus' own parser
//! and linter), with every kind of series, escapes, exemplars and the service's metrics.
//! promtool comes with Debian's `prometheus` package (`make deps`); without it this fails.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};

use common::{counter, gauge, http_get_accept, start};
use taskloom_proto::v1::metrics_service_client::MetricsServiceClient;
use taskloom_proto::v1::{Exemplar, HistogramData, IngestRequest, MetricKind, MetricSample};

fn promtool_check(exposition: &str) -> anyhow::Result<(bool, String)> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot run promtool (install prometheus: make deps): {e}"))?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(exposition.as_bytes())?;
    let out = child.wait_with_output()?;
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.success(), report))
}

#[tokio::test]
async fn the_text_exposition_passes_promtool_check_metrics() -> anyhow::Result<()> {
    let server = start(&["--max-series-per-metric", "3"]).await?;
    let mut client = MetricsServiceClient::connect(server.grpc_url()).await?;
    let histogram = |labels: &[(&str, &str)]| MetricSample {
        name: "taskloom_agent_llm_request_duration_seconds".into(),
        kind: MetricKind::Histogram.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<HashMap<_, _>>(),
        help: "LLM request latency, \"quoted\" and \\ escaped\nover two lines.".into(),
        histogram: Some(HistogramData {
            bounds: vec![0.05, 0.5, 5.0],
            counts: vec![1, 2, 3, 4],
            sum: 31.5,
        }),
        exemplars: vec![Exemplar {
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            value: 0.2,
            time: None,
        }],
        ..MetricSample::default()
    };
    let mut tokens = counter(
        "taskloom_agent_llm_tokens_total",
        12.0,
        &[("agent", "a \"b\" \\c\nd"), ("kind", "prompt")],
    );
    tokens.help = "LLM tokens spent.".into();
    let mut running = gauge("taskloom_agent_tasks_running", -2.5, &[]);
    running.help = "Tasks running now.".into();
    let samples = vec![
        tokens,
        running,
        histogram(&[("agent", "a"), ("model", "m")]),
        histogram(&[]),
        // Beyond the limit of 3: counted per metric.
        counter("taskloom_agent_llm_cache_total", 1.0, &[("r", "1")]),
        counter("taskloom_agent_llm_cache_total", 1.0, &[("r", "2")]),
        counter("taskloom_agent_llm_cache_total", 1.0, &[("r", "3")]),
        counter("taskloom_agent_llm_cache_total", 1.0, &[("r", "4")]),
    ];
    client.ingest(IngestRequest { samples }).await?;
    let (status, _, text) = http_get_accept(server.http_addr, "/metrics", "text/plain").await?;
    assert_eq!(status, 200);
    assert!(text.contains("taskloom_metrics_cardinality_dropped_samples_total{metric=\"taskloom_agent_llm_cache\"} 1"), "{text}");
    let (ok, report) = promtool_check(&text)?;
    assert!(
        ok,
        "promtool check metrics failed:\n{report}\n--- exposition:\n{text}"
    );

    // promtool's check is not lenient: a broken line fails it.
    let (ok, _) = promtool_check(&format!("{text}broken{{le=\"1\" 2\n"))?;
    assert!(!ok, "promtool accepted a broken exposition");
    server.shutdown().await
}
