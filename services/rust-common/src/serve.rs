//! The serving loop every service shares: its tonic routes plus grpc.health.v1 and
//! reflection on the gRPC port, /healthz /readyz /metrics on the HTTP port, and a clean
//! drain on SIGTERM/SIGINT.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::{Json, Router};
use futures::future::BoxFuture;
use prometheus_client::registry::Registry;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tracing::{info, warn};

use crate::config::CommonArgs;
use crate::otel::{RpcSpanLayer, Tracing};
use crate::profiling::{self, ProfilingAccess};

/// How long in-flight requests may run on after a shutdown signal.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Dependencies that are not reachable, by name, with why.
pub type NotReady = BTreeMap<String, String>;

/// Checks the service's dependencies for `/readyz`.
pub type Readiness = Arc<dyn Fn() -> BoxFuture<'static, Result<(), NotReady>> + Send + Sync>;

/// A readiness check for a service without external dependencies.
pub fn always_ready() -> Readiness {
    Arc::new(|| Box::pin(async { Ok(()) }))
}

/// A service's own `/metrics`, for a service whose exposition is more than its registry
/// (the metrics service exposes what it ingested, in the format the scraper asks for).
pub trait Exposition: Send + Sync + 'static {
    /// The content type and body answering a request with this `Accept` header.
    fn render(&self, accept: Option<&str>) -> (&'static str, String);
}

/// Everything `serve` needs from a service.
pub struct ServiceSpec {
    /// The service's gRPC routes (its tonic servers).
    pub routes: Routes,
    /// Fully qualified gRPC service names, reported SERVING by grpc.health.v1.
    pub grpc_service_names: Vec<&'static str>,
    /// The service's metrics, exposed on `/metrics`.
    pub registry: Registry,
    pub readiness: Readiness,
    /// When set, `/metrics` serves this instead of `registry`.
    pub exposition: Option<Arc<dyn Exposition>>,
}

/// Binds both addresses of `common` and serves until SIGTERM or SIGINT, with a span per RPC
/// when `tracing` is on; then flushes the spans.
pub async fn serve(
    spec: ServiceSpec,
    common: &CommonArgs,
    tracing: Option<Tracing>,
) -> anyhow::Result<()> {
    let served = async {
        let grpc = TcpListener::bind(common.grpc_addr).await?;
        let http = TcpListener::bind(common.http_addr).await?;
        serve_on(
            spec,
            grpc,
            http,
            common.profiling_access(),
            tracing.as_ref().map(Tracing::rpc_spans),
            shutdown_signal(),
        )
        .await
    }
    .await;
    if let Some(tracing) = tracing {
        tracing.shutdown().await;
    }
    served
}

/// Serves on bound listeners (with the profiling endpoints when `profiling` is given, and a
/// span per RPC with `rpc_spans`) until `shutdown` completes, then drains for at most
/// [`DRAIN_TIMEOUT`]. Tests bind 127.0.0.1:0 and pass their own `shutdown`.
pub async fn serve_on(
    spec: ServiceSpec,
    grpc: TcpListener,
    http: TcpListener,
    profiling: Option<ProfilingAccess>,
    rpc_spans: Option<RpcSpanLayer>,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_service_status("", ServingStatus::Serving).await;
    for name in &spec.grpc_service_names {
        health
            .set_service_status(*name, ServingStatus::Serving)
            .await;
    }
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(taskloom_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let routes = spec
        .routes
        .add_service(health_service)
        .add_service(reflection().build_v1()?)
        .add_service(reflection().build_v1alpha()?);

    let stop = CancellationToken::new();
    let grpc_addr = grpc.local_addr()?;
    let http_addr = http.local_addr()?;
    // TCP_NODELAY on every accepted socket: with Nagle on, a response smaller than a segment
    // waits for the client's delayed ACK (tens of ms) while other calls share the connection.
    let grpc_incoming = TcpIncoming::from(grpc).with_nodelay(Some(true));
    // Without tracing the layer is tower's identity: nothing runs per call.
    let grpc_server = tonic::transport::Server::builder()
        .layer(tower::util::option_layer(rpc_spans))
        .add_routes(routes)
        .serve_with_incoming_shutdown(grpc_incoming, stop.clone().cancelled_owned());
    let mut router = http_router(spec.registry, spec.readiness, spec.exposition);
    if let Some(access) = profiling {
        router = router.merge(profiling::routes(access).await);
    }
    let http_server = axum::serve(
        http.tap_io(set_nodelay),
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(stop.clone().cancelled_owned());
    info!(grpc_addr = %grpc_addr, http_addr = %http_addr, "serving");

    let servers = async {
        let (g, h) = tokio::join!(grpc_server, http_server);
        g?;
        h?;
        anyhow::Ok(())
    };
    tokio::pin!(servers);
    tokio::select! {
        result = &mut servers => {
            // A server stopped without being asked: report why.
            return result.and_then(|()| Err(anyhow::anyhow!("server stopped unexpectedly")));
        }
        () = shutdown => {}
    }
    info!("shutdown requested, draining");
    health
        .set_service_status("", ServingStatus::NotServing)
        .await;
    for name in &spec.grpc_service_names {
        health
            .set_service_status(*name, ServingStatus::NotServing)
            .await;
    }
    stop.cancel();
    match tokio::time::timeout(DRAIN_TIMEOUT, servers).await {
        Ok(result) => result?,
        Err(_) => warn!(timeout = ?DRAIN_TIMEOUT, "drain timed out; in-flight requests dropped"),
    }
    info!("stopped");
    Ok(())
}

fn set_nodelay(stream: &mut TcpStream) {
    if let Err(e) = stream.set_nodelay(true) {
        warn!(error = %e, "cannot set TCP_NODELAY on an accepted connection");
    }
}

/// Resolves on the first SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            warn!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => info!(signal = "SIGINT", "signal received"),
        () = term => info!(signal = "SIGTERM", "signal received"),
    }
}

#[derive(Clone)]
struct HttpState {
    registry: Arc<Registry>,
    readiness: Readiness,
    exposition: Option<Arc<dyn Exposition>>,
}

fn http_router(
    registry: Registry,
    readiness: Readiness,
    exposition: Option<Arc<dyn Exposition>>,
) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(HttpState {
            registry: Arc::new(registry),
            readiness,
            exposition,
        })
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

async fn readyz(State(state): State<HttpState>) -> impl IntoResponse {
    match (state.readiness)().await {
        Ok(()) => (StatusCode::OK, Json(serde_json::json!({"status": "ready"}))),
        Err(not_ready) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"status": "not_ready", "not_ready": not_ready})),
        ),
    }
}

async fn metrics(State(state): State<HttpState>, headers: HeaderMap) -> Response {
    if let Some(exposition) = state.exposition {
        let accept = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        // A large exposition takes milliseconds to render: keep it off the async workers.
        return match tokio::task::spawn_blocking(move || exposition.render(accept.as_deref())).await
        {
            Ok((content_type, body)) => {
                (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], body).into_response()
            }
            Err(e) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot render metrics: {e}"),
            )
                .into_response(),
        };
    }
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &state.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("cannot encode metrics: {e}"),
        ),
    }
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{bare_spec, wait_for_tcp_socket, TestServer};

    /// Nagle's algorithm on a server socket holds small responses back until the client's
    /// delayed ACK: every accepted socket, gRPC and HTTP, must have TCP_NODELAY set.
    #[tokio::test]
    async fn accepted_sockets_have_tcp_nodelay() -> anyhow::Result<()> {
        let server = TestServer::start(bare_spec()).await?;
        for addr in [server.grpc_addr, server.http_addr] {
            let client = TcpStream::connect(addr).await?;
            let client_addr = client.local_addr()?;
            let accepted =
                wait_for_tcp_socket(|s| s.local == addr && s.peer == client_addr).await?;
            assert!(
                accepted.nodelay,
                "server side of {client_addr} -> {addr}: Nagle is on"
            );
        }
        server.shutdown().await
    }
}
