//! Taskloom's metrics service: agents ingest samples over gRPC at high rate; the service
//! aggregates them in memory, exposes them to Prometheus and answers queries.

pub mod config;
pub mod exposition;
pub mod metrics;
pub mod service;
pub mod store;

use std::sync::Arc;

use prometheus_client::registry::Registry;
use taskloom_common::{always_ready, ServiceSpec};
use taskloom_proto::v1::metrics_service_server::{MetricsServiceServer, SERVICE_NAME};
use tonic::service::Routes;

/// Wires the store, metrics and gRPC service into what `taskloom_common::serve` runs.
pub fn service_spec(settings: &config::Settings) -> ServiceSpec {
    let store = Arc::new(store::Store::new(settings.max_series));
    let mut registry = Registry::default();
    let metrics = Arc::new(metrics::IngestMetrics::register(
        &mut registry,
        store.clone(),
    ));
    registry.register_collector(Box::new(exposition::IngestedSeries(store.clone())));
    ServiceSpec {
        routes: Routes::new(MetricsServiceServer::new(service::MetricsGrpc::new(
            store, metrics,
        ))),
        grpc_service_names: vec![SERVICE_NAME],
        registry,
        readiness: always_ready(),
    }
}
