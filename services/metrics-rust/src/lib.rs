//! Taskloom's metrics service: agents stream batches of samples over gRPC; the service
//! aggregates them in memory (bounded per metric and in all, idle series expire), exposes
//! them to Prometheus in the text or OpenMetrics format, answers queries and summarizes
//! each agent's LLM traffic.

pub mod clock;
pub mod config;
pub mod exposition;
pub mod ingest_route;
pub mod maintenance;
pub mod metrics;
pub mod naming;
pub mod sample;
pub mod series;
pub mod service;
pub mod store;
pub mod summary;
pub mod validate;
pub mod wire;

use std::sync::Arc;

use prometheus_client::registry::Registry;
use taskloom_common::{always_ready, ServiceSettings, ServiceSpec};
use taskloom_proto::v1::metrics_service_server::SERVICE_NAME;

/// Wires the store, summaries, metrics and gRPC routes into what `taskloom_common::serve`
/// runs, and starts the background expiry and summary loops (on the current runtime).
pub fn service_spec(settings: &config::Settings) -> anyhow::Result<ServiceSpec> {
    settings.validate().map_err(anyhow::Error::msg)?;
    let clock = clock::Clock::start();
    let store = Arc::new(store::Store::new(store::Limits {
        max_series: settings.max_series,
        max_series_per_metric: settings.max_series_per_metric,
    }));
    let metrics = Arc::new(metrics::ServiceMetrics::default());
    let millis = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let summaries = Arc::new(summary::Summaries::new(
        millis(settings.summary_step),
        millis(settings.summary_retention),
        clock.now(),
    ));
    maintenance::spawn(&store, &summaries, &metrics, clock, settings.series_ttl);
    let grpc = Arc::new(service::MetricsGrpc::new(
        Arc::clone(&store),
        summaries,
        Arc::clone(&metrics),
        clock,
    ));
    Ok(ServiceSpec {
        routes: ingest_route::routes(grpc),
        grpc_service_names: vec![SERVICE_NAME],
        // Unused: the exposition below writes the service's own metrics too.
        registry: Registry::default(),
        readiness: always_ready(),
        exposition: Some(Arc::new(exposition::MetricsPage::new(store, metrics))),
    })
}
