//! Taskloom's cache service: namespaced byte values with TTLs, answered from an in-process
//! L1 (moka) and, when `--redis-url` is set, a shared L2 (Redis), both behind the
//! [`tier::Tier`] seam and stacked by [`cache::Cache`]. Instances sharing a Redis drop each
//! other's written keys from their L1 through pub/sub ([`invalidation`]).

pub mod cache;
pub mod config;
pub mod invalidation;
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
    let mut registry = Registry::default();
    let l1 = l1::L1::new(settings.l1());
    let metrics = Arc::new(metrics::CacheMetrics::register(&mut registry, l1.clone()));
    let (cache, subscribed) = match settings.l2() {
        None => (cache::Cache::new(l1, None, metrics.clone()), None),
        Some(config) => {
            let invalidations = invalidation::Invalidations::for_url(&config.url)
                .context("cannot read the Redis URL")?;
            let tier = l2::RedisTier::new(&config, invalidations.clone())
                .context("cannot set up the Redis (L2) client")?;
            let cache = cache::Cache::new(l1, Some(Arc::new(tier)), metrics.clone());
            let subscribed = invalidation::spawn_listener(
                l2::client(&config.url)?,
                invalidations,
                cache.clone(),
                metrics.clone(),
                config.timeout,
            );
            (cache, Some(subscribed))
        }
    };
    let readiness = readiness(&cache, subscribed);
    let server = CacheServiceServer::new(service::CacheGrpc::new(cache, metrics))
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
    Ok(ServiceSpec {
        routes: Routes::new(server),
        grpc_service_names: vec![SERVICE_NAME],
        registry,
        readiness,
        exposition: None,
    })
}

/// L1 only: always ready. With L2: ready while Redis answers PING and the invalidation
/// subscription stands (the service still answers without them, from L1, but it is not what
/// it was configured to be).
fn readiness(cache: &cache::Cache, subscribed: Option<invalidation::Subscribed>) -> Readiness {
    let Some(subscribed) = subscribed else {
        return always_ready();
    };
    let cache = cache.clone();
    Arc::new(move || {
        let (cache, subscribed) = (cache.clone(), subscribed.clone());
        Box::pin(async move {
            let mut not_ready = taskloom_common::NotReady::new();
            if let Err(e) = cache.ping_l2().await {
                not_ready.insert("redis".to_string(), e.message);
            } else if !subscribed.get() {
                not_ready.insert(
                    "invalidations".to_string(),
                    "not subscribed to the invalidation channel yet".to_string(),
                );
            }
            if not_ready.is_empty() {
                Ok(())
            } else {
                Err(not_ready)
            }
        })
    })
}
