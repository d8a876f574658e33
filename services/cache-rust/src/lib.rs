//! Taskloom's cache service: namespaced byte values with TTLs, answered from an in-process
//! L1 (moka) and, when `--redis-url` is set, a shared L2 (Redis), both behind the
//! [`tier::Tier`] seam and stacked by [`cache::Cache`].

pub mod cache;
pub mod config;
pub mod l1;
pub mod l2;
pub mod metrics;
pub mod service;
pub mod testing;
pub mod tier;
pub mod versions;

use std::sync::Arc;

use anyhow::Context;
use prometheus_client::registry::Registry;
use taskloom_common::{always_ready, Readiness, ServiceSpec};
use taskloom_proto::v1::cache_service_server::{CacheServiceServer, SERVICE_NAME};
use tonic::service::Routes;

/// Requests carry values up to 16 MiB (batches several); tonic's default limit is 4 MiB.
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Wires the cache tiers, metrics and gRPC service into what `taskloom_common::serve` runs.
/// Must be called inside a tokio runtime (the Redis connection manager spawns a task); it
/// does not wait for Redis, which may come up later.
pub fn service_spec(settings: &config::Settings) -> anyhow::Result<ServiceSpec> {
    let l2: Option<Arc<dyn tier::Tier>> = match settings.l2() {
        None => None,
        Some(config) => Some(Arc::new(
            l2::RedisTier::new(&config).context("cannot set up the Redis (L2) client")?,
        )),
    };
    Ok(spec_with_tiers(settings, l2))
}

/// As [`service_spec`] with a given L2 tier (tests wrap the Redis tier to observe it).
pub fn spec_with_tiers(
    settings: &config::Settings,
    l2: Option<Arc<dyn tier::Tier>>,
) -> ServiceSpec {
    let mut registry = Registry::default();
    let l1 = l1::L1::new(settings.l1());
    let metrics = Arc::new(metrics::CacheMetrics::register(&mut registry, l1.clone()));
    let cache = cache::Cache::new(l1, l2, metrics.clone());
    let readiness = readiness(&cache);
    let server = CacheServiceServer::new(service::CacheGrpc::new(cache, metrics))
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
    ServiceSpec {
        routes: Routes::new(server),
        grpc_service_names: vec![SERVICE_NAME],
        registry,
        readiness,
        exposition: None,
    }
}

/// L1 only: always ready. With L2: ready while Redis answers PING (the service still
/// answers without it, from L1, but it is not what it was configured to be).
fn readiness(cache: &cache::Cache) -> Readiness {
    if cache.l2().is_none() {
        return always_ready();
    }
    let cache = cache.clone();
    Arc::new(move || {
        let cache = cache.clone();
        Box::pin(async move {
            cache
                .ping_l2()
                .await
                .map_err(|e| [("redis".to_string(), e.message)].into())
        })
    })
}
