//! Starts the real metrics server on loopback, streams samples with the generated client,
//! and reads them back through QueryMetrics and the HTTP exposition.

use std::collections::HashMap;

use taskloom_common::config::parse_config_from;
use taskloom_common::testing::{http_get, TestServer};
use taskloom_metrics::{config::Settings, service_spec};
use taskloom_proto::v1::metrics_service_client::MetricsServiceClient;
use taskloom_proto::v1::{IngestStreamRequest, MetricKind, MetricSample, QueryMetricsRequest};

fn sample(kind: MetricKind, value: f64, agent: &str) -> MetricSample {
    MetricSample {
        name: "taskloom_agent_llm_tokens_total".into(),
        kind: kind.into(),
        value,
        labels: HashMap::from([("agent".to_string(), agent.to_string())]),
        help: "LLM tokens".into(),
    }
}

#[tokio::test]
async fn stream_ingest_then_query_and_scrape() -> anyhow::Result<()> {
    let settings: Settings = parse_config_from(["taskloom-metrics"], "127.0.0.1:0", "127.0.0.1:0")?;
    let server = TestServer::start(service_spec(&settings)).await?;
    let mut client = MetricsServiceClient::connect(server.grpc_url()).await?;

    let batches = vec![
        IngestStreamRequest {
            samples: vec![
                sample(MetricKind::Counter, 10.0, "echo"),
                sample(MetricKind::Counter, 5.0, "echo"),
            ],
        },
        IngestStreamRequest {
            samples: vec![
                sample(MetricKind::Counter, 1.0, "other"),
                // A gauge under a counter's name conflicts: rejected, not an error.
                sample(MetricKind::Gauge, 1.0, "echo"),
            ],
        },
    ];
    let totals = client
        .ingest_stream(tokio_stream::iter(batches))
        .await?
        .into_inner();
    assert_eq!((totals.accepted, totals.rejected), (3, 1));

    let series = client
        .query_metrics(QueryMetricsRequest {
            name: "taskloom_agent_llm_tokens_total".into(),
            labels: HashMap::from([("agent".to_string(), "echo".to_string())]),
        })
        .await?
        .into_inner()
        .series;
    assert_eq!(series.len(), 1);
    assert_eq!(series[0].value, 15.0);

    let (status, text) = http_get(server.http_addr, "/metrics").await?;
    assert_eq!(status, 200);
    for line in [
        r#"taskloom_agent_llm_tokens_total{agent="echo"} 15.0"#,
        "taskloom_metrics_samples_ingested_total 3",
        r#"taskloom_metrics_samples_rejected_total{reason="kind_conflict"} 1"#,
        "taskloom_metrics_series 2",
    ] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }
    server.shutdown().await
}
