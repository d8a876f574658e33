//! Starts the real cache server on loopback and drives it with the generated client.

use taskloom_cache::{config::Settings, service_spec};
use taskloom_common::config::parse_config_from;
use taskloom_common::testing::{http_get, TestServer};
use taskloom_proto::v1::cache_service_client::CacheServiceClient;
use taskloom_proto::v1::{CacheTier, GetRequest, SetRequest};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use tonic_types::StatusExt;

#[tokio::test]
async fn set_get_over_grpc_and_http_endpoints() -> anyhow::Result<()> {
    let settings: Settings = parse_config_from(["taskloom-cache"], "127.0.0.1:0", "127.0.0.1:0")?;
    let server = TestServer::start(service_spec(&settings)?).await?;
    let mut client = CacheServiceClient::connect(server.grpc_url()).await?;

    client
        .set(SetRequest {
            namespace: "llm".into(),
            key: "prompt-1".into(),
            value: b"answer".to_vec(),
            ttl: None,
        })
        .await?;
    let got = client
        .get(GetRequest {
            namespace: "llm".into(),
            key: "prompt-1".into(),
        })
        .await?
        .into_inner();
    assert!(got.found);
    assert_eq!(got.value, b"answer");
    assert_eq!(got.tier, CacheTier::L1 as i32);

    let err = client
        .get(GetRequest {
            namespace: "llm".into(),
            key: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let details = err.get_error_details();
    assert_eq!(
        details.error_info().expect("info").reason,
        "INVALID_ARGUMENT"
    );
    assert_eq!(
        details.bad_request().expect("bad").field_violations[0].field,
        "key"
    );

    let (status, body) = http_get(server.http_addr, "/healthz").await?;
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
    assert_eq!(http_get(server.http_addr, "/readyz").await?.0, 200);
    let (status, metrics) = http_get(server.http_addr, "/metrics").await?;
    assert_eq!(status, 200);
    assert!(
        metrics.contains(r#"taskloom_cache_requests_total{op="get",result="hit",tier="l1"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains("taskloom_cache_size_bytes"), "{metrics}");

    let channel = tonic::transport::Channel::from_shared(server.grpc_url())?
        .connect()
        .await?;
    let mut health = HealthClient::new(channel);
    for service in ["", "taskloom.v1.CacheService"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await?
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }

    server.shutdown().await
}
