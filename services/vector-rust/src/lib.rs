//! Taskloom's vector memory service: collections of embeddings with payloads, nearest-
//! neighbour search (HNSW) with payload filters, durable through a write-ahead log and
//! snapshots in a data directory.

pub mod collection;
pub mod config;
pub mod convert;
pub mod distance;
pub mod filter;
pub mod hnsw;
pub mod metrics;
pub mod service;
pub mod snapshot;
pub mod store;
pub mod wal;

use std::collections::BTreeMap;
use std::sync::Arc;

use prometheus_client::registry::Registry;
use taskloom_common::{Readiness, ServiceSpec};
use taskloom_proto::v1::vector_service_server::{VectorServiceServer, SERVICE_NAME};
use tonic::service::Routes;

/// Upserts carry up to thousands of 4096-dimension vectors; tonic's default limit is 4 MiB.
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Opens the store (loading saved collections) and wires the gRPC service and metrics.
pub fn service_spec(settings: &config::Settings) -> anyhow::Result<ServiceSpec> {
    let store = Arc::new(store::Store::open(
        &settings.data_dir,
        settings.store_options(),
    )?);
    let mut registry = Registry::default();
    let metrics = Arc::new(metrics::VectorMetrics::register(
        &mut registry,
        store.clone(),
    ));
    let data_dir = store.data_dir().to_path_buf();
    // Ready while the data directory is there to write collections into.
    let readiness: Readiness = Arc::new(move || {
        let data_dir = data_dir.clone();
        Box::pin(async move {
            match tokio::fs::metadata(&data_dir).await {
                Ok(m) if m.is_dir() => Ok(()),
                Ok(_) => Err(BTreeMap::from([(
                    "data_dir".to_string(),
                    format!("{} is not a directory", data_dir.display()),
                )])),
                Err(e) => Err(BTreeMap::from([(
                    "data_dir".to_string(),
                    format!("{}: {e}", data_dir.display()),
                )])),
            }
        })
    });
    let server = VectorServiceServer::new(service::VectorGrpc::new(store, metrics))
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
    Ok(ServiceSpec {
        routes: Routes::new(server),
        grpc_service_names: vec![SERVICE_NAME],
        registry,
        readiness,
        exposition: None,
    })
}
