//! Tracing of a real `taskloom-cache` process, seen by an OTLP/gRPC receiver run by the test:
//! with `OTEL_EXPORTER_OTLP_ENDPOINT` set each RPC is a SERVER span, a child of the caller's
//! `traceparent` metadata, flushed on SIGTERM; without it nothing is exported.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::Span;
use taskloom_common::testing::ServiceProcess;
use taskloom_proto::v1::cache_service_client::CacheServiceClient;
use taskloom_proto::v1::GetRequest;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Channel;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN_ID: &str = "00f067aa0ba902b7";

/// A span as received, with the `service.name` of its resource.
#[derive(Debug, Clone)]
struct Received {
    service_name: String,
    span: Span,
}

impl Received {
    fn attributes(&self) -> BTreeMap<String, String> {
        self.span.attributes.iter().map(attribute).collect()
    }
}

fn attribute(kv: &KeyValue) -> (String, String) {
    let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        other => format!("{other:?}"),
    };
    (kv.key.clone(), value)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Clone, Default)]
struct Collected(Arc<Mutex<Vec<ExportTraceServiceRequest>>>);

#[tonic::async_trait]
impl TraceService for Collected {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.lock().expect("lock").push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// An OTLP/gRPC trace receiver on a loopback port chosen by the system.
struct Receiver {
    url: String,
    collected: Collected,
    _stop: oneshot::Sender<()>,
}

impl Receiver {
    async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let collected = Collected::default();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(collected.clone()))
                .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                    let _ = stopped.await;
                }),
        );
        Ok(Self {
            url,
            collected,
            _stop: stop,
        })
    }

    fn spans(&self) -> Vec<Received> {
        let requests = self.collected.0.lock().expect("lock");
        let mut spans = Vec::new();
        for resource_spans in requests.iter().flat_map(|r| &r.resource_spans) {
            let service_name = resource_spans
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .map(attribute)
                .find_map(|(k, v)| (k == "service.name").then_some(v))
                .unwrap_or_default();
            for span in resource_spans.scope_spans.iter().flat_map(|s| &s.spans) {
                spans.push(Received {
                    service_name: service_name.clone(),
                    span: span.clone(),
                });
            }
        }
        spans
    }
}

/// Starts the cache with this environment. The batch delay is an hour, so spans reach the
/// receiver only through the flush of the graceful shutdown.
fn start_cache(env: &[(&str, &str)]) -> anyhow::Result<ServiceProcess> {
    let env: Vec<(&str, &str)> = [("OTEL_BSP_SCHEDULE_DELAY", "3600000")]
        .into_iter()
        .chain(env.iter().copied())
        .collect();
    ServiceProcess::start(env!("CARGO_BIN_EXE_taskloom-cache"), &[], &env)
}

/// SIGTERM and the wait for the exit, off the test's runtime: the receiver runs on it and must
/// answer the flush meanwhile.
async fn terminate(cache: ServiceProcess) -> anyhow::Result<std::process::ExitStatus> {
    tokio::task::spawn_blocking(move || cache.terminate()).await?
}

/// A Get of `namespace`/`k`, with this `traceparent` metadata if any; returns its gRPC code.
async fn get(
    client: &mut CacheServiceClient<Channel>,
    namespace: &str,
    traceparent: Option<&str>,
) -> anyhow::Result<tonic::Code> {
    let mut request = tonic::Request::new(GetRequest {
        namespace: namespace.into(),
        key: "k".into(),
    });
    if let Some(traceparent) = traceparent {
        request
            .metadata_mut()
            .insert("traceparent", traceparent.parse()?);
    }
    Ok(match client.get(request).await {
        Ok(_) => tonic::Code::Ok,
        Err(status) => status.code(),
    })
}

#[tokio::test]
async fn each_rpc_is_a_server_span_under_the_callers_traceparent() -> anyhow::Result<()> {
    let receiver = Receiver::start().await?;
    let cache = start_cache(&[("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.url)])?;
    let mut client = CacheServiceClient::connect(cache.grpc_url()).await?;
    let traceparent = format!("00-{TRACE_ID}-{PARENT_SPAN_ID}-01");
    assert_eq!(
        get(&mut client, "llm", Some(&traceparent)).await?,
        tonic::Code::Ok
    );
    assert_eq!(
        get(&mut client, "", Some(&traceparent)).await?,
        tonic::Code::InvalidArgument
    );
    // Without a traceparent: a root, sampled at the default ratio 1.0.
    assert_eq!(get(&mut client, "llm", None).await?, tonic::Code::Ok);
    drop(client);
    assert!(terminate(cache).await?.success());

    let spans = receiver.spans();
    assert_eq!(spans.len(), 3, "{spans:#?}");
    for received in &spans {
        let span = &received.span;
        assert_eq!(received.service_name, "taskloom-cache");
        assert_eq!(span.name, "taskloom.v1.CacheService/Get");
        assert_eq!(span.kind, SpanKind::Server as i32);
        let attributes = received.attributes();
        for (key, value) in [
            ("rpc.system", "grpc"),
            ("rpc.service", "taskloom.v1.CacheService"),
            ("rpc.method", "Get"),
        ] {
            assert_eq!(
                attributes.get(key).map(String::as_str),
                Some(value),
                "{key}"
            );
        }
    }
    let status_code = |r: &Received| r.attributes().get("rpc.grpc.status_code").cloned();
    let (children, roots): (Vec<_>, Vec<_>) = spans
        .iter()
        .partition(|r| hex(&r.span.parent_span_id) == PARENT_SPAN_ID);
    assert_eq!((children.len(), roots.len()), (2, 1), "{spans:#?}");
    let mut codes: Vec<_> = children.iter().map(|r| status_code(r)).collect();
    codes.sort();
    assert_eq!(codes, [Some("0".to_owned()), Some("3".to_owned())]);
    for child in &children {
        assert_eq!(hex(&child.span.trace_id), TRACE_ID);
    }
    let root = &roots[0].span;
    assert!(root.parent_span_id.is_empty(), "{root:?}");
    assert_ne!(hex(&root.trace_id), TRACE_ID);
    assert_eq!(status_code(roots[0]), Some("0".to_owned()));
    Ok(())
}

#[tokio::test]
async fn the_ratio_samples_new_traces_and_a_caller_decides_for_its_own() -> anyhow::Result<()> {
    let receiver = Receiver::start().await?;
    let cache = start_cache(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.url),
        ("OTEL_TRACES_SAMPLER_ARG", "0"),
        ("OTEL_SERVICE_NAME", "cache-east"),
    ])?;
    let mut client = CacheServiceClient::connect(cache.grpc_url()).await?;
    let sampled = format!("00-{TRACE_ID}-{PARENT_SPAN_ID}-01");
    let not_sampled = format!("00-{TRACE_ID}-{PARENT_SPAN_ID}-00");
    get(&mut client, "llm", None).await?;
    get(&mut client, "llm", Some(&not_sampled)).await?;
    get(&mut client, "llm", Some(&sampled)).await?;
    drop(client);
    assert!(terminate(cache).await?.success());

    let spans = receiver.spans();
    assert_eq!(spans.len(), 1, "only the sampled caller's: {spans:#?}");
    assert_eq!(hex(&spans[0].span.parent_span_id), PARENT_SPAN_ID);
    assert_eq!(spans[0].service_name, "cache-east");
    Ok(())
}

#[tokio::test]
async fn without_the_endpoint_nothing_is_exported() -> anyhow::Result<()> {
    let receiver = Receiver::start().await?;
    // An empty OTEL_EXPORTER_OTLP_ENDPOINT is unset. Were an exporter built anyway, given no
    // endpoint it would export to the receiver named by the per-signal variable.
    let cache = start_cache(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", ""),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &receiver.url),
    ])?;
    let mut client = CacheServiceClient::connect(cache.grpc_url()).await?;
    let traceparent = format!("00-{TRACE_ID}-{PARENT_SPAN_ID}-01");
    assert_eq!(
        get(&mut client, "llm", Some(&traceparent)).await?,
        tonic::Code::Ok
    );
    drop(client);
    assert!(terminate(cache).await?.success());
    assert!(receiver.spans().is_empty(), "{:#?}", receiver.spans());
    Ok(())
}
