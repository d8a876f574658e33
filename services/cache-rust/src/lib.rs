//! Taskloom's cache service: namespaced byte values with TTLs, answered from an in-process
//! L1 (moka) and, once implemented, a shared L2 (Redis) behind the [`tier::Tier`] seam.

pub mod cache;
pub mod config;
pub mod l1;
pub mod metrics;
pub mod service;
pub mod tier;

use std::sync::Arc;

use prometheus_client::registry::Registry;
use taskloom_common::{always_ready, ServiceSpec};
use taskloom_proto::v1::cache_service_server::{CacheServiceServer, SERVICE_NAME};
use tonic::service::Routes;

/// Requests carry values up to 16 MiB (batches several); tonic's default limit is 4 MiB.
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Wires the cache tiers, metrics and gRPC service into what `taskloom_common::serve` runs.
pub fn service_spec(settings: &config::Settings) -> ServiceSpec {
    let mut registry = Registry::default();
    let l1 = l1::L1::new(settings.l1());
    let metrics = Arc::new(metrics::CacheMetrics::register(&mut registry, l1.clone()));
    let cache = cache::Cache::new(l1, None);
    let server = CacheServiceServer::new(service::CacheGrpc::new(cache, metrics))
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
    ServiceSpec {
        routes: Routes::new(server),
        grpc_service_names: vec![SERVICE_NAME],
        registry,
        // L1 only: nothing external to wait for. An L2 adds its ping here.
        readiness: always_ready(),
    }
}
