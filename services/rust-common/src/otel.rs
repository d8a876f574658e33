//! OpenTelemetry tracing for every service (docs/tracing.md): with `OTEL_EXPORTER_OTLP_ENDPOINT`
//! set, a tracer provider exporting over OTLP/gRPC in batches on the tokio runtime, and a SERVER
//! span per RPC ([`RpcSpanLayer`]), a child of the caller's W3C `traceparent` metadata. Without
//! it there is no provider and no layer: serving is as if this module did not exist.

use std::borrow::Cow;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use clap::Args;
use futures::future::BoxFuture;
use http_body::{Frame, SizeHint};
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{
    FutureExt as _, Span as _, SpanKind, Status, TraceContextExt as _, Tracer as _,
    TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use serde::{Deserialize, Serialize};
use tonic::body::Body;
use tonic::codegen::http::{HeaderMap, Request, Response};
use tonic::codegen::{Bytes, Service};
use tracing::{info, warn, Instrument as _};

/// How long a graceful shutdown waits for the last spans to be exported.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// gRPC services whose calls get no span: probes and tooling, not Taskloom's work.
const UNTRACED_SERVICES: [&str; 3] = [
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

/// The tracing settings every service shares, read from the standard OpenTelemetry variables.
#[derive(Args, Debug, Clone, Serialize, Deserialize)]
pub struct TracingArgs {
    /// OTLP/gRPC endpoint to export spans to, plain `http://` (e.g. a local collector at
    /// `http://127.0.0.1:4317`). Unset: tracing is off.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,

    /// Fraction of new traces to sample, 0 to 1; a call inside a trace follows its caller's
    /// decision (parent-based). 1.0 is the OpenTelemetry default for trace-id-ratio sampling.
    #[arg(long, env = "OTEL_TRACES_SAMPLER_ARG", default_value_t = 1.0)]
    pub trace_sample_ratio: f64,

    /// `service.name` of the exported spans; default `taskloom-<service>`.
    #[arg(long, env = "OTEL_SERVICE_NAME")]
    pub otel_service_name: Option<String>,
}

impl TracingArgs {
    /// The endpoint when tracing is on (an empty value is unset, as the OTel spec has it).
    pub fn endpoint(&self) -> Option<&str> {
        self.otlp_endpoint.as_deref().filter(|e| !e.is_empty())
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        let ratio = self.trace_sample_ratio;
        if !(0.0..=1.0).contains(&ratio) {
            return Err(format!(
                "trace_sample_ratio (OTEL_TRACES_SAMPLER_ARG): {ratio} is not between 0 and 1"
            ));
        }
        match self.endpoint() {
            Some(e) if !e.starts_with("http://") => Err(format!(
                "otlp_endpoint (OTEL_EXPORTER_OTLP_ENDPOINT): {e:?} must be an http:// URL \
                 (spans go in plain gRPC to a collector beside the service; TLS is not built in)"
            )),
            _ => Ok(()),
        }
    }
}

/// The running tracer provider. [`Tracing::shutdown`] exports what is still buffered.
pub struct Tracing {
    provider: SdkTracerProvider,
    rpc_spans: RpcSpanLayer,
}

impl Tracing {
    /// Starts tracing when `args` has an endpoint, naming the service `default_service_name`
    /// unless `OTEL_SERVICE_NAME` says otherwise; `None` (and nothing started) without one.
    /// Must run inside the tokio runtime, which exports the batches.
    pub fn start(args: &TracingArgs, default_service_name: &str) -> anyhow::Result<Option<Self>> {
        let Some(endpoint) = args.endpoint() else {
            return Ok(None);
        };
        let service_name = args
            .otel_service_name
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| default_service_name.to_owned());
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()?;
        let ratio = args.trace_sample_ratio;
        let provider = SdkTracerProvider::builder()
            .with_span_processor(
                BatchSpanProcessor::builder(exporter, opentelemetry_sdk::runtime::Tokio).build(),
            )
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                ratio,
            ))))
            .with_resource(
                Resource::builder()
                    .with_service_name(service_name.clone())
                    .build(),
            )
            .build();
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        let rpc_spans = RpcSpanLayer {
            tracer: provider.tracer("taskloom-common"),
            propagator: TraceContextPropagator::new(),
        };
        info!(
            endpoint,
            service_name,
            sample_ratio = ratio,
            "tracing on: exporting spans over OTLP/gRPC"
        );
        Ok(Some(Self {
            provider,
            rpc_spans,
        }))
    }

    /// The layer that gives each RPC of a gRPC server its span.
    pub fn rpc_spans(&self) -> RpcSpanLayer {
        self.rpc_spans.clone()
    }

    /// Exports the spans still buffered and stops the exporter, waiting at most
    /// [`FLUSH_TIMEOUT`]. The SDK blocks while it flushes, so that runs on a thread of its own
    /// while the runtime goes on exporting.
    pub async fn shutdown(self) {
        let (done, flushed) = tokio::sync::oneshot::channel();
        let provider = self.provider;
        let spawned = std::thread::Builder::new()
            .name("otel-shutdown".into())
            .spawn(move || {
                let _ = done.send(provider.shutdown());
            });
        if let Err(e) = spawned {
            warn!(error = %e, "cannot flush spans: no thread");
            return;
        }
        match tokio::time::timeout(FLUSH_TIMEOUT, flushed).await {
            Ok(Ok(Ok(()))) => info!("spans flushed"),
            Ok(Ok(Err(e))) => warn!(error = %e, "spans not flushed"),
            Ok(Err(_)) => warn!("spans not flushed: the flushing thread stopped"),
            Err(_) => warn!(timeout = ?FLUSH_TIMEOUT, "spans not flushed in time; dropped"),
        }
    }
}

/// A tower layer for tonic's server: a SERVER span `<full.Service>/<Method>` per RPC, a child
/// of the incoming `traceparent`, ended when the response's gRPC status is known; the call's
/// logs carry its `trace_id`.
#[derive(Clone)]
pub struct RpcSpanLayer {
    tracer: SdkTracer,
    propagator: TraceContextPropagator,
}

impl<S> tower::Layer<S> for RpcSpanLayer {
    type Service = RpcSpans<S>;

    fn layer(&self, inner: S) -> RpcSpans<S> {
        RpcSpans {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`RpcSpanLayer`] wraps around the server's routes.
#[derive(Clone)]
pub struct RpcSpans<S> {
    inner: S,
    layer: RpcSpanLayer,
}

impl<S, B> Service<Request<B>> for RpcSpans<S>
where
    S: Service<Request<B>, Response = Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let Some((service, method)) = grpc_method(request.uri().path()) else {
            return Box::pin(self.inner.call(request));
        };
        if UNTRACED_SERVICES.contains(&service) {
            return Box::pin(self.inner.call(request));
        }
        let parent = self
            .layer
            .propagator
            .extract(&MetadataExtractor(request.headers()));
        let caller = parent.span().span_context().clone();
        if caller.is_valid() && !caller.is_sampled() {
            // The caller's trace is not recorded: no span to build, name or end, only the
            // trace id for the call's logs.
            let trace_id = caller.trace_id();
            return Box::pin(
                self.inner
                    .call(request)
                    .instrument(tracing::info_span!("rpc", trace_id = %trace_id)),
            );
        }
        let span = self
            .layer
            .tracer
            .span_builder(format!("{service}/{method}"))
            .with_kind(SpanKind::Server)
            .with_attributes([
                KeyValue::new("rpc.system", "grpc"),
                KeyValue::new("rpc.service", service.to_owned()),
                KeyValue::new("rpc.method", method.to_owned()),
            ])
            .start_with_context(&self.layer.tracer, &parent);
        let trace_id = span.span_context().trace_id();
        let cx = parent.with_span(span);
        let response = self
            .inner
            .call(request)
            .with_context(cx.clone())
            .instrument(tracing::info_span!("rpc", trace_id = %trace_id));
        Box::pin(async move {
            let result = response.await;
            match result {
                Ok(response) => match grpc_status(response.headers()) {
                    // Trailers-only: the call failed before any message.
                    Some(code) => {
                        end_span(&cx, Some(code));
                        Ok(response)
                    }
                    None => Ok(response.map(|body| {
                        Body::new(SpanEndingBody {
                            inner: body,
                            cx: Some(cx),
                        })
                    })),
                },
                Err(e) => {
                    end_span(&cx, None);
                    Err(e)
                }
            }
        })
    }
}

/// `("pkg.Service", "Method")` from a gRPC request path `/pkg.Service/Method`.
fn grpc_method(path: &str) -> Option<(&str, &str)> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    (!service.is_empty() && !method.is_empty() && !method.contains('/'))
        .then_some((service, method))
}

/// The `grpc-status` of these headers or trailers.
fn grpc_status(headers: &HeaderMap) -> Option<i64> {
    headers.get("grpc-status")?.to_str().ok()?.parse().ok()
}

/// Ends the context's span with the call's gRPC status code, when known. As the OTel
/// conventions have it for a server, only codes that are the server's fault are errors.
fn end_span(cx: &Context, code: Option<i64>) {
    let span = cx.span();
    if let Some(code) = code {
        span.set_attribute(KeyValue::new("rpc.grpc.status_code", code));
        let server_fault = matches!(code, 2 | 4 | 12 | 13 | 14 | 15);
        if server_fault {
            let name = tonic::Code::from_i32(code as i32).description();
            span.set_status(Status::Error {
                description: Cow::Borrowed(name),
            });
        }
    }
    span.end();
}

/// A response body that ends the call's span when its trailers (with the gRPC status) go out.
/// Dropped before that (the client went away), it ends the span without a status.
struct SpanEndingBody {
    inner: Body,
    cx: Option<Context>,
}

impl SpanEndingBody {
    fn finish(&mut self, code: Option<i64>) {
        if let Some(cx) = self.cx.take() {
            end_span(&cx, code);
        }
    }
}

impl http_body::Body for SpanEndingBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    let code = grpc_status(trailers);
                    self.finish(code);
                }
            }
            Poll::Ready(Some(Err(status))) => self.finish(Some(status.code() as i64)),
            Poll::Ready(None) => self.finish(None),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for SpanEndingBody {
    fn drop(&mut self) {
        self.finish(None);
    }
}

/// Reads W3C trace context from gRPC metadata (HTTP/2 headers).
struct MetadataExtractor<'a>(&'a HeaderMap);

impl Extractor for MetadataExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_paths_split_into_service_and_method() {
        assert_eq!(
            grpc_method("/taskloom.v1.CacheService/Get"),
            Some(("taskloom.v1.CacheService", "Get"))
        );
        for not_grpc in ["", "/", "/x", "/x/", "//Get", "/a/b/c", "metrics"] {
            assert_eq!(grpc_method(not_grpc), None, "{not_grpc:?}");
        }
    }

    fn args(endpoint: Option<&str>, ratio: f64) -> TracingArgs {
        TracingArgs {
            otlp_endpoint: endpoint.map(str::to_owned),
            trace_sample_ratio: ratio,
            otel_service_name: None,
        }
    }

    #[test]
    fn off_without_an_endpoint_and_bad_settings_are_refused() {
        assert_eq!(args(None, 1.0).endpoint(), None);
        assert_eq!(args(Some(""), 1.0).endpoint(), None, "empty is unset");
        assert!(args(Some("http://127.0.0.1:4317"), 0.1).validate().is_ok());
        assert!(args(None, 1.5).validate().is_err());
        assert!(args(None, f64::NAN).validate().is_err());
        let message = args(Some("https://collector:4317"), 1.0)
            .validate()
            .expect_err("https");
        assert!(message.contains("http://"), "{message}");
    }

    #[tokio::test]
    async fn start_without_an_endpoint_starts_nothing() -> anyhow::Result<()> {
        assert!(Tracing::start(&args(None, 1.0), "taskloom-test")?.is_none());
        Ok(())
    }
}
