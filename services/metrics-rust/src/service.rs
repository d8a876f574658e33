//! The gRPC transport of the metrics service: turns `MetricSample`s into store samples,
//! counts what was accepted and rejected, answers queries.

use std::sync::Arc;

use taskloom_proto::v1::metrics_service_server::MetricsService;
use taskloom_proto::v1::{
    IngestRequest, IngestResponse, IngestStreamRequest, IngestStreamResponse, MetricKind,
    MetricSample, QueryMetricsRequest, QueryMetricsResponse, Series,
};
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use crate::metrics::IngestMetrics;
use crate::store::{Kind, Sample, Store};

pub struct MetricsGrpc {
    store: Arc<Store>,
    metrics: Arc<IngestMetrics>,
}

impl MetricsGrpc {
    pub fn new(store: Arc<Store>, metrics: Arc<IngestMetrics>) -> Self {
        Self { store, metrics }
    }

    /// Ingests a batch sample by sample; returns (accepted, rejected).
    fn ingest_batch(&self, samples: Vec<MetricSample>) -> (i64, i64) {
        let (mut accepted, mut rejected) = (0, 0);
        for sample in samples {
            match self.store.ingest(&from_proto(sample)) {
                Ok(()) => accepted += 1,
                Err(reason) => {
                    rejected += 1;
                    self.metrics.rejected(reason);
                }
            }
        }
        self.metrics.accepted(accepted as u64);
        (accepted, rejected)
    }
}

fn from_proto(sample: MetricSample) -> Sample {
    let kind = match sample.kind() {
        MetricKind::Counter => Some(Kind::Counter),
        MetricKind::Gauge => Some(Kind::Gauge),
        MetricKind::Histogram => Some(Kind::Histogram),
        MetricKind::Unspecified => None,
    };
    Sample {
        name: sample.name,
        kind,
        value: sample.value,
        labels: sample.labels.into_iter().collect(),
        help: sample.help,
    }
}

fn to_proto_kind(kind: Kind) -> MetricKind {
    match kind {
        Kind::Counter => MetricKind::Counter,
        Kind::Gauge => MetricKind::Gauge,
        Kind::Histogram => MetricKind::Histogram,
    }
}

#[tonic::async_trait]
impl MetricsService for MetricsGrpc {
    async fn ingest(
        &self,
        request: Request<IngestRequest>,
    ) -> Result<Response<IngestResponse>, Status> {
        let (accepted, rejected) = self.ingest_batch(request.into_inner().samples);
        Ok(Response::new(IngestResponse { accepted, rejected }))
    }

    async fn ingest_stream(
        &self,
        request: Request<Streaming<IngestStreamRequest>>,
    ) -> Result<Response<IngestStreamResponse>, Status> {
        let mut stream = request.into_inner();
        let mut totals = IngestStreamResponse::default();
        while let Some(batch) = stream.next().await {
            let (accepted, rejected) = self.ingest_batch(batch?.samples);
            totals.accepted += accepted;
            totals.rejected += rejected;
        }
        Ok(Response::new(totals))
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
                kind: to_proto_kind(s.kind).into(),
                labels: s.labels.into_iter().collect(),
                value: s.value,
                count: s.count,
            })
            .collect();
        Ok(Response::new(QueryMetricsResponse { series }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::registry::Registry;

    fn sample(name: &str, kind: MetricKind, value: f64) -> MetricSample {
        MetricSample {
            name: name.into(),
            kind: kind.into(),
            value,
            ..MetricSample::default()
        }
    }

    #[tokio::test]
    async fn rejections_are_counted_not_a_batch_error() {
        let store = Arc::new(Store::new(100));
        let metrics = Arc::new(IngestMetrics::register(
            &mut Registry::default(),
            store.clone(),
        ));
        let svc = MetricsGrpc::new(store, metrics);
        let resp = svc
            .ingest(Request::new(IngestRequest {
                samples: vec![
                    sample("ok_total", MetricKind::Counter, 1.0),
                    sample("ok_total", MetricKind::Counter, -1.0),
                    sample("bad name", MetricKind::Gauge, 1.0),
                    sample("g", MetricKind::Unspecified, 1.0),
                    sample("g", MetricKind::Gauge, 2.0),
                ],
            }))
            .await
            .expect("ingest")
            .into_inner();
        assert_eq!((resp.accepted, resp.rejected), (2, 3));
        let found = svc
            .query_metrics(Request::new(QueryMetricsRequest {
                name: "ok_total".into(),
                ..QueryMetricsRequest::default()
            }))
            .await
            .expect("query")
            .into_inner()
            .series;
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].value, 1.0);
        assert_eq!(found[0].kind, MetricKind::Counter as i32);
    }
}
