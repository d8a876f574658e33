//! Starts the real metrics server on loopback and drives it through its public interfaces:
//! IngestStream with the generated client, QueryMetrics, and `/metrics` over HTTP.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{counter, gauge, http_get_accept, start, wait_for};
use taskloom_proto::v1::metrics_service_client::MetricsServiceClient;
use taskloom_proto::v1::{
    Exemplar, IngestRequest, IngestStreamRequest, MetricKind, MetricSample, QueryMetricsRequest,
};
use tonic::Code;
use tonic_types::StatusExt;

#[tokio::test]
async fn stream_ingest_then_query_and_scrape() -> anyhow::Result<()> {
    let server = start(&[]).await?;
    let mut client = MetricsServiceClient::connect(server.grpc_url()).await?;

    let batches = vec![
        IngestStreamRequest {
            samples: vec![
                counter(
                    "taskloom_agent_llm_tokens_total",
                    10.0,
                    &[("agent", "echo")],
                ),
                counter("taskloom_agent_llm_tokens_total", 5.0, &[("agent", "echo")]),
            ],
        },
        IngestStreamRequest {
            samples: vec![
                counter(
                    "taskloom_agent_llm_tokens_total",
                    1.0,
                    &[("agent", "other")],
                ),
                gauge("taskloom_agent_tasks_running", 3.0, &[]),
            ],
        },
    ];
    let totals = client
        .ingest_stream(tokio_stream::iter(batches))
        .await?
        .into_inner();
    assert_eq!((totals.accepted, totals.rejected), (4, 0));

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

    let (status, _, text) = http_get_accept(server.http_addr, "/metrics", "*/*").await?;
    assert_eq!(status, 200);
    for line in [
        "# TYPE taskloom_agent_llm_tokens_total counter",
        r#"taskloom_agent_llm_tokens_total{agent="echo"} 15"#,
        "taskloom_agent_tasks_running 3",
        "taskloom_metrics_samples_ingested_total 4",
        "taskloom_metrics_batches_ingested_total 2",
        "taskloom_metrics_series 3",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line} missing from:\n{text}"
        );
    }
    server.shutdown().await
}

#[tokio::test]
async fn a_bad_batch_ends_the_stream_naming_the_field_and_changes_nothing() -> anyhow::Result<()> {
    let server = start(&[]).await?;
    let mut client = MetricsServiceClient::connect(server.grpc_url()).await?;
    let good = IngestStreamRequest {
        samples: vec![gauge("depth", 1.0, &[])],
    };
    let bad = IngestStreamRequest {
        samples: vec![
            gauge("depth", 2.0, &[]),
            // A kind change for an existing metric.
            counter("depth", 1.0, &[]),
        ],
    };
    let status = client
        .ingest_stream(tokio_stream::iter(vec![good.clone(), good, bad]))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument);
    let details = status.get_error_details();
    let info = details.error_info().expect("ErrorInfo");
    assert_eq!(info.reason, "INVALID_ARGUMENT");
    assert_eq!(info.metadata["accepted_batches"], "2");
    assert_eq!(info.metadata["reject_reason"], "conflict");
    let field = &details.bad_request().expect("BadRequest").field_violations[0];
    assert_eq!(field.field, "samples[1].kind");
    assert!(field.description.contains("gauge"), "{}", field.description);

    // The bad batch's valid first sample was not applied either.
    let series = client
        .query_metrics(QueryMetricsRequest {
            name: "depth".into(),
            ..QueryMetricsRequest::default()
        })
        .await?
        .into_inner()
        .series;
    assert_eq!(series[0].value, 1.0);

    // Unary Ingest: the same rules, no batch count.
    let mut nan = gauge("depth", f64::NAN, &[]);
    nan.labels.insert("bad-label".into(), "x".into());
    let status = client
        .ingest(IngestRequest {
            samples: vec![gauge("depth", 5.0, &[]), nan],
        })
        .await
        .expect_err("refused");
    let details = status.get_error_details();
    assert_eq!(
        details.bad_request().expect("BadRequest").field_violations[0].field,
        "samples[1].labels"
    );
    assert!(!details
        .error_info()
        .expect("info")
        .metadata
        .contains_key("accepted_batches"));
    let (_, _, text) = http_get_accept(server.http_addr, "/metrics", "*/*").await?;
    for line in [
        r#"taskloom_metrics_batches_rejected_total{reason="conflict"} 1"#,
        r#"taskloom_metrics_batches_rejected_total{reason="invalid_label"} 1"#,
        "depth 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line} missing from:\n{text}"
        );
    }
    server.shutdown().await
}

#[tokio::test]
async fn concurrent_streams_aggregate_exactly() -> anyhow::Result<()> {
    let server = start(&[]).await?;
    let (streams, batches, series): (u32, u32, u32) = (8, 25, 40);
    let tasks: Vec<_> = (0..streams)
        .map(|s| {
            let url = server.grpc_url();
            tokio::spawn(async move {
                let mut client = MetricsServiceClient::connect(url).await?;
                let requests = (0..batches).map(move |b| IngestStreamRequest {
                    samples: (0..series)
                        .flat_map(|i| {
                            let i = i.to_string();
                            [
                                counter("requests_total", 1.0, &[("i", &i)]),
                                MetricSample {
                                    name: "latency_seconds".into(),
                                    kind: MetricKind::Histogram.into(),
                                    value: 0.01 * f64::from(b),
                                    labels: HashMap::from([("i".to_string(), i.clone())]),
                                    ..MetricSample::default()
                                },
                                gauge("last_stream", f64::from(s), &[("i", &i)]),
                            ]
                        })
                        .collect(),
                });
                let totals = client
                    .ingest_stream(tokio_stream::iter(requests))
                    .await?
                    .into_inner();
                anyhow::Ok(totals.accepted)
            })
        })
        .collect();
    let mut accepted = 0;
    for task in tasks {
        accepted += task.await??;
    }
    assert_eq!(accepted, i64::from(streams * batches * series * 3));

    let mut client = MetricsServiceClient::connect(server.grpc_url()).await?;
    let all = client
        .query_metrics(QueryMetricsRequest::default())
        .await?
        .into_inner()
        .series;
    assert_eq!(all.len(), 3 * series as usize);
    let per_series = f64::from(streams * batches);
    let expected_sum: f64 =
        (0..batches).map(|b| 0.01 * f64::from(b)).sum::<f64>() * f64::from(streams);
    for s in &all {
        match s.name.as_str() {
            "requests_total" => assert_eq!(s.value, per_series, "{s:?}"),
            "latency_seconds" => {
                assert_eq!(s.count, u64::from(streams * batches), "{s:?}");
                assert!((s.value - expected_sum).abs() < 1e-6, "{s:?}");
            }
            _ => assert!((0..streams).any(|st| f64::from(st) == s.value), "{s:?}"),
        }
    }
    server.shutdown().await
}

#[tokio::test]
async fn a_metric_beyond_its_series_limit_drops_and_counts_samples() -> anyhow::Result<()> {
    let server = start(&["--max-series-per-metric", "5"]).await?;
    let mut client = MetricsServiceClient::connect(server.grpc_url()).await?;
    let samples: Vec<_> = (0..8)
        .map(|i| counter("per_user_total", 1.0, &[("user", &i.to_string())]))
        .chain([counter("other_total", 1.0, &[])])
        .collect();
    let totals = client
        .ingest_stream(tokio_stream::iter([IngestStreamRequest { samples }]))
        .await?
        .into_inner();
    assert_eq!((totals.accepted, totals.rejected), (6, 3));
    let (_, _, text) = http_get_accept(server.http_addr, "/metrics", "*/*").await?;
    for line in [
        r#"taskloom_metrics_cardinality_dropped_samples_total{metric="per_user"} 3"#,
        r#"taskloom_metrics_samples_dropped_total{reason="metric_series_limit"} 3"#,
        "taskloom_metrics_series 6",
        "other_total 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line} missing from:\n{text}"
        );
    }
    server.shutdown().await
}

#[tokio::test]
async fn series_that_stop_receiving_samples_expire() -> anyhow::Result<()> {
    let server = start(&["--series-ttl", "1s"]).await?;
    let mut client = MetricsServiceClient::connect(server.grpc_url()).await?;
    client
        .ingest(IngestRequest {
            samples: vec![gauge("idle_gauge", 1.0, &[("w", "gone")])],
        })
        .await?;
    let (_, _, text) = http_get_accept(server.http_addr, "/metrics", "*/*").await?;
    assert!(text.contains(r#"idle_gauge{w="gone"} 1"#), "{text}");
    // No timing margin: wait (bounded generously) until expiry has run.
    let expired = wait_for(Duration::from_secs(30), || async {
        let (_, _, text) = http_get_accept(server.http_addr, "/metrics", "*/*").await?;
        Ok((!text.contains("idle_gauge")).then_some(text))
    })
    .await?;
    for line in [
        "taskloom_metrics_series_expired_total 1",
        "taskloom_metrics_series 0",
    ] {
        assert!(
            expired.lines().any(|l| l == line),
            "{line} missing from:\n{expired}"
        );
    }
    server.shutdown().await
}

#[tokio::test]
async fn openmetrics_when_asked_with_exemplars_carrying_trace_ids() -> anyhow::Result<()> {
    let server = start(&[]).await?;
    let mut client = MetricsServiceClient::connect(server.grpc_url()).await?;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    client
        .ingest(IngestRequest {
            samples: vec![
                MetricSample {
                    name: "taskloom_agent_llm_request_duration_seconds".into(),
                    kind: MetricKind::Histogram.into(),
                    value: 0.3,
                    labels: HashMap::from([("agent".to_string(), "a".to_string())]),
                    help: "LLM request latency".into(),
                    exemplars: vec![Exemplar {
                        trace_id: trace_id.into(),
                        value: 0.3,
                        time: Some(prost_types::Timestamp {
                            seconds: 1_700_000_000,
                            nanos: 0,
                        }),
                    }],
                    ..MetricSample::default()
                },
                counter("requests_total", 2.0, &[]),
            ],
        })
        .await?;
    let (_, content_type, om) = http_get_accept(
        server.http_addr,
        "/metrics",
        "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
    )
    .await?;
    assert_eq!(
        content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let bucket = format!(
        r#"taskloom_agent_llm_request_duration_seconds_bucket{{agent="a",le="0.5"}} 1 # {{trace_id="{trace_id}"}} 0.3 1700000000"#
    );
    for line in [
        bucket.as_str(),
        "# TYPE requests counter",
        "requests_total 2",
        "# EOF",
    ] {
        assert!(om.lines().any(|l| l == line), "{line} missing from:\n{om}");
    }
    let (_, content_type, text) = http_get_accept(server.http_addr, "/metrics", "*/*").await?;
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    assert!(!text.contains("trace_id") && text.contains("# TYPE requests_total counter"));
    server.shutdown().await
}
