//! The gRPC transport of the metrics service: hands batches to the store, counts what
//! happened, and turns a refused batch into INVALID_ARGUMENT with the field at fault.
//! `ingest_route` feeds it the request bytes of the two ingest calls; this file also
//! implements them over prost's decoded messages, the path any other route takes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use taskloom_common::errors::{reason_name, ERROR_DOMAIN};
use taskloom_proto::v1::metrics_service_server::MetricsService;
use taskloom_proto::v1::{
    AgentSummary, ErrorReason, IngestRequest, IngestResponse, IngestStreamRequest,
    IngestStreamResponse, MetricSample, QueryMetricsRequest, QueryMetricsResponse, Series,
    SummarizeAgentsRequest, SummarizeAgentsResponse,
};
use tokio_stream::{Stream, StreamExt};
use tonic::{Code, Request, Response, Status, Streaming};
use tonic_types::{ErrorDetails, StatusExt};

use crate::clock::Clock;
use crate::metrics::ServiceMetrics;
use crate::sample::SampleView;
use crate::store::{Ingested, Store};
use crate::summary::{self, Summaries};
use crate::validate::{Invalid, RejectReason};
use crate::wire::{decode_samples, Malformed};

/// Why a batch was refused, ready to become a status.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchError {
    pub field: String,
    pub message: String,
    pub reason: RejectReason,
}

impl From<Invalid> for BatchError {
    fn from(invalid: Invalid) -> Self {
        BatchError {
            field: invalid.path(),
            message: invalid.message,
            reason: invalid.reason,
        }
    }
}

impl From<Malformed> for BatchError {
    fn from(malformed: Malformed) -> Self {
        BatchError {
            field: malformed.field,
            message: format!("not a valid MetricSample: {}", malformed.message),
            reason: RejectReason::Malformed,
        }
    }
}

impl BatchError {
    /// INVALID_ARGUMENT naming the field; on a stream, ErrorInfo metadata
    /// `accepted_batches` counts the batches applied before this one.
    pub fn status(&self, accepted_batches: Option<u64>) -> Status {
        let mut metadata = HashMap::from([(
            "reject_reason".to_string(),
            self.reason.as_str().to_string(),
        )]);
        if let Some(n) = accepted_batches {
            metadata.insert("accepted_batches".into(), n.to_string());
        }
        let mut details = ErrorDetails::with_error_info(
            reason_name(ErrorReason::InvalidArgument),
            ERROR_DOMAIN,
            metadata,
        );
        details.add_bad_request_violation(self.field.clone(), self.message.clone());
        Status::with_error_details(
            Code::InvalidArgument,
            format!("{}: {}", self.field, self.message),
            details,
        )
    }
}

pub struct MetricsGrpc {
    store: Arc<Store>,
    summaries: Arc<Summaries>,
    metrics: Arc<ServiceMetrics>,
    clock: Clock,
}

impl MetricsGrpc {
    pub fn new(
        store: Arc<Store>,
        summaries: Arc<Summaries>,
        metrics: Arc<ServiceMetrics>,
        clock: Clock,
    ) -> Self {
        Self {
            store,
            summaries,
            metrics,
            clock,
        }
    }

    fn ingest_views(&self, samples: &mut [SampleView<'_>]) -> Result<Ingested, BatchError> {
        match self.store.ingest(samples, self.clock.now()) {
            Ok(outcome) => {
                self.metrics.batch_ingested(&outcome);
                Ok(outcome)
            }
            Err(invalid) => {
                self.metrics.batch_rejected(invalid.reason);
                Err(invalid.into())
            }
        }
    }

    /// One batch from the encoded bytes of an `IngestRequest` or `IngestStreamRequest`.
    pub fn ingest_encoded(&self, bytes: &[u8]) -> Result<Ingested, BatchError> {
        let mut samples = decode_samples(bytes).map_err(|malformed| {
            self.metrics.batch_rejected(RejectReason::Malformed);
            BatchError::from(malformed)
        })?;
        self.ingest_views(&mut samples)
    }

    /// One batch from decoded messages.
    pub fn ingest_decoded(&self, samples: &[MetricSample]) -> Result<Ingested, BatchError> {
        let mut views: Vec<SampleView<'_>> = samples.iter().map(SampleView::from).collect();
        self.ingest_views(&mut views)
    }

    /// Applies a stream's batches in order until it ends or a batch is refused.
    pub async fn ingest_batches<M>(
        &self,
        mut batches: impl Stream<Item = Result<M, Status>> + Unpin,
        ingest: impl Fn(&Self, &M) -> Result<Ingested, BatchError>,
    ) -> Result<IngestStreamResponse, Status> {
        let _open = self.metrics.stream_opened();
        let mut totals = IngestStreamResponse::default();
        let mut applied = 0;
        while let Some(batch) = batches.next().await {
            let outcome = ingest(self, &batch?).map_err(|e| e.status(Some(applied)))?;
            applied += 1;
            totals.accepted += outcome.accepted as i64;
            totals.rejected += outcome.dropped_total() as i64;
        }
        Ok(totals)
    }
}

fn window_ms(window: Option<&prost_types::Duration>, default_ms: u64) -> Result<u64, Status> {
    let Some(window) = window else {
        return Ok(default_ms);
    };
    let valid = window.seconds >= 0 && (0..1_000_000_000).contains(&window.nanos);
    if !valid {
        return Err(taskloom_common::invalid_argument(
            "window",
            "must be a positive duration",
        ));
    }
    let ms = Duration::new(window.seconds as u64, window.nanos as u32).as_millis();
    Ok(u64::try_from(ms).unwrap_or(u64::MAX))
}

fn to_proto_summary(s: summary::AgentSummary) -> AgentSummary {
    AgentSummary {
        agent: s.agent,
        model: s.model,
        requests: s.requests,
        requests_per_second: s.requests_per_second,
        errors: s.errors,
        error_ratio: s.error_ratio,
        latency_p50_seconds: s.latency_p50_seconds,
        latency_p90_seconds: s.latency_p90_seconds,
        latency_p99_seconds: s.latency_p99_seconds,
        tokens: s.tokens,
        tokens_per_second: s.tokens_per_second,
        cache_hit_ratio: s.cache_hit_ratio,
    }
}

fn duration_ms(ms: u64) -> prost_types::Duration {
    prost_types::Duration {
        seconds: (ms / 1000) as i64,
        nanos: ((ms % 1000) * 1_000_000) as i32,
    }
}

#[tonic::async_trait]
impl MetricsService for MetricsGrpc {
    async fn ingest(
        &self,
        request: Request<IngestRequest>,
    ) -> Result<Response<IngestResponse>, Status> {
        let outcome = self
            .ingest_decoded(&request.into_inner().samples)
            .map_err(|e| e.status(None))?;
        Ok(Response::new(IngestResponse {
            accepted: outcome.accepted as i64,
            rejected: outcome.dropped_total() as i64,
        }))
    }

    async fn ingest_stream(
        &self,
        request: Request<Streaming<IngestStreamRequest>>,
    ) -> Result<Response<IngestStreamResponse>, Status> {
        self.ingest_batches(request.into_inner(), |grpc, batch: &IngestStreamRequest| {
            grpc.ingest_decoded(&batch.samples)
        })
        .await
        .map(Response::new)
    }

    async fn query_metrics(
        &self,
        request: Request<QueryMetricsRequest>,
    ) -> Result<Response<QueryMetricsResponse>, Status> {
        let req = request.into_inner();
        let labels = req.labels.into_iter().collect();
        let series = self
            .store
            .query(&req.name, &labels)
            .into_iter()
            .map(|s| Series {
                name: s.name,
                kind: s.kind.to_wire().into(),
                labels: s.labels.into_iter().collect(),
                value: s.value,
                count: s.count,
            })
            .collect();
        Ok(Response::new(QueryMetricsResponse { series }))
    }

    async fn summarize_agents(
        &self,
        request: Request<SummarizeAgentsRequest>,
    ) -> Result<Response<SummarizeAgentsResponse>, Status> {
        let req = request.into_inner();
        let window = window_ms(req.window.as_ref(), self.summaries.default_window_ms())?;
        let nonempty = |s: &str| (!s.is_empty()).then_some(s.to_string());
        let (agent, model) = (nonempty(&req.agent), nonempty(&req.model));
        let summary = self
            .summaries
            .summarize(
                &self.store,
                window,
                self.clock.now(),
                agent.as_deref(),
                model.as_deref(),
            )
            .map_err(|range| {
                let format = |ms| humantime::format_duration(Duration::from_millis(ms));
                taskloom_common::invalid_argument(
                    "window",
                    format!(
                        "must be between {} and {} (the service's summary step and retention)",
                        format(range.min_ms),
                        format(range.max_ms)
                    ),
                )
            })?;
        Ok(Response::new(SummarizeAgentsResponse {
            agents: summary.agents.into_iter().map(to_proto_summary).collect(),
            window: Some(duration_ms(summary.window_ms)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Limits;
    use taskloom_proto::v1::MetricKind;

    fn grpc() -> MetricsGrpc {
        let clock = Clock::start();
        MetricsGrpc::new(
            Arc::new(Store::new(Limits {
                max_series: 100,
                max_series_per_metric: 100,
            })),
            Arc::new(Summaries::new(10_000, 3_600_000, clock.now())),
            Arc::new(ServiceMetrics::default()),
            clock,
        )
    }

    fn sample(name: &str, kind: MetricKind, value: f64) -> MetricSample {
        MetricSample {
            name: name.into(),
            kind: kind.into(),
            value,
            ..MetricSample::default()
        }
    }

    #[tokio::test]
    async fn a_bad_sample_is_invalid_argument_naming_its_field() {
        let svc = grpc();
        let status = svc
            .ingest(Request::new(IngestRequest {
                samples: vec![
                    sample("ok_total", MetricKind::Counter, 1.0),
                    sample("g", MetricKind::Gauge, f64::NAN),
                ],
            }))
            .await
            .expect_err("NaN gauge");
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        assert_eq!(
            details.error_info().expect("info").reason,
            "INVALID_ARGUMENT"
        );
        let bad = details.bad_request().expect("bad request");
        assert_eq!(bad.field_violations[0].field, "samples[1].value");
        let found = svc
            .query_metrics(Request::new(QueryMetricsRequest::default()))
            .await
            .expect("query")
            .into_inner()
            .series;
        assert!(found.is_empty(), "the batch changed nothing: {found:?}");
    }

    #[tokio::test]
    async fn the_zero_copy_and_the_prost_paths_agree() {
        use prost::Message;
        let (fast, reference) = (grpc(), grpc());
        let histogram = |bounds: Vec<f64>| MetricSample {
            histogram: Some(taskloom_proto::v1::HistogramData {
                counts: vec![1; bounds.len() + 1],
                bounds,
                sum: 2.0,
            }),
            ..sample("h_seconds", MetricKind::Histogram, 0.0)
        };
        let mut labelled = sample("c_total", MetricKind::Counter, 2.0);
        labelled.labels = HashMap::from([
            ("b".to_string(), "2".to_string()),
            ("a".to_string(), "1".to_string()),
            ("z".to_string(), String::new()),
        ]);
        let batches = [
            vec![labelled.clone(), sample("g", MetricKind::Gauge, -1.0)],
            vec![histogram(vec![0.5, 1.0]), labelled],
            vec![histogram(vec![0.5])],
            vec![sample("g", MetricKind::Counter, 1.0)],
            vec![sample("x", MetricKind::Unspecified, 1.0)],
            vec![sample("c_total", MetricKind::Counter, -3.0)],
            vec![
                sample("fine", MetricKind::Gauge, 1.0),
                sample("bad name", MetricKind::Gauge, 1.0),
            ],
        ];
        for samples in batches {
            let encoded = IngestRequest {
                samples: samples.clone(),
            }
            .encode_to_vec();
            assert_eq!(
                fast.ingest_encoded(&encoded),
                reference.ingest_decoded(&samples),
                "{samples:?}"
            );
        }
        let everything = |svc: &MetricsGrpc| svc.store.query("", &Default::default());
        assert_eq!(everything(&fast), everything(&reference));
        assert_eq!(everything(&fast).len(), 3);
    }

    #[tokio::test]
    async fn a_window_outside_the_summary_range_is_invalid_argument() {
        let svc = grpc();
        for seconds in [1, 7200, -5] {
            let status = svc
                .summarize_agents(Request::new(SummarizeAgentsRequest {
                    window: Some(prost_types::Duration { seconds, nanos: 0 }),
                    ..SummarizeAgentsRequest::default()
                }))
                .await
                .expect_err("out of range");
            let bad = status
                .get_error_details()
                .bad_request()
                .cloned()
                .expect("field");
            assert_eq!(bad.field_violations[0].field, "window", "{seconds}");
        }
        let ok = svc
            .summarize_agents(Request::new(SummarizeAgentsRequest::default()))
            .await
            .expect("default window")
            .into_inner();
        assert!(ok.agents.is_empty());
    }
}
