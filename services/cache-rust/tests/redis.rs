//! Two cache servers started with `--redis-url` sharing one real `redis-server`, driven with
//! the generated client and the HTTP endpoints: L2 sharing, batch ops, Redis going down.

use std::time::Duration;

use taskloom_cache::testing::{unused_redis_url, RedisServer};
use taskloom_cache::{config::Settings, service_spec};
use taskloom_common::config::parse_config_from;
use taskloom_common::testing::{http_get, TestServer};
use taskloom_proto::v1::cache_service_client::CacheServiceClient;
use taskloom_proto::v1::{
    BatchGetRequest, BatchSetRequest, CacheEntry, CacheTier, DeleteRequest, GetRequest,
    GetResponse, SetRequest,
};
use tonic::transport::Channel;
use tonic::Code;
use tonic_types::StatusExt;

async fn start(redis_url: &str) -> anyhow::Result<(TestServer, CacheServiceClient<Channel>)> {
    let settings: Settings = parse_config_from(
        ["taskloom-cache", "--redis-url", redis_url],
        "127.0.0.1:0",
        "127.0.0.1:0",
    )?;
    let server = TestServer::start(service_spec(&settings)?).await?;
    let client = CacheServiceClient::connect(server.grpc_url()).await?;
    Ok((server, client))
}

async fn get(client: &mut CacheServiceClient<Channel>, key: &str) -> anyhow::Result<GetResponse> {
    Ok(client
        .get(GetRequest {
            namespace: "llm".into(),
            key: key.into(),
        })
        .await?
        .into_inner())
}

async fn set(
    client: &mut CacheServiceClient<Channel>,
    key: &str,
    value: &[u8],
    ttl: Option<Duration>,
) -> anyhow::Result<()> {
    client
        .set(SetRequest {
            namespace: "llm".into(),
            key: key.into(),
            value: value.to_vec(),
            ttl: ttl.map(|d| d.try_into().expect("ttl")),
        })
        .await?;
    Ok(())
}

#[tokio::test]
async fn instances_share_l2_and_degrade_to_l1_when_redis_goes_down() -> anyhow::Result<()> {
    let Some(mut redis) = RedisServer::start().await? else {
        return Ok(());
    };
    let (a, mut client_a) = start(&redis.url()).await?;
    let (b, mut client_b) = start(&redis.url()).await?;
    let (status, body) = http_get(a.http_addr, "/readyz").await?;
    assert_eq!(status, 200, "{body}");

    // Written through A, found by B in L2, then in B's L1.
    set(
        &mut client_a,
        "p1",
        b"answer",
        Some(Duration::from_secs(60)),
    )
    .await?;
    let got = get(&mut client_b, "p1").await?;
    assert!(got.found);
    assert_eq!(got.value, b"answer");
    assert_eq!(got.tier, CacheTier::L2 as i32);
    assert_eq!(get(&mut client_b, "p1").await?.tier, CacheTier::L1 as i32);
    assert!(!get(&mut client_b, "nope").await?.found);

    // The value is in Redis under the documented key, with the entry's TTL.
    let mut raw = redis.connection().await?;
    let pttl: i64 = redis::cmd("PTTL")
        .arg("taskloom:cache:llm:p1")
        .query_async(&mut raw)
        .await?;
    assert!(pttl > 0 && pttl <= 60_000, "{pttl}");

    // Batches: set through A, read through B in request order with the L2 TTLs.
    client_a
        .batch_set(BatchSetRequest {
            namespace: "llm".into(),
            entries: vec![
                CacheEntry {
                    key: "x".into(),
                    value: b"1".to_vec(),
                    ttl: Some(Duration::from_secs(30).try_into()?),
                    ..CacheEntry::default()
                },
                CacheEntry {
                    key: "y".into(),
                    value: b"2".to_vec(),
                    ..CacheEntry::default()
                },
            ],
        })
        .await?;
    let entries = client_b
        .batch_get(BatchGetRequest {
            namespace: "llm".into(),
            keys: vec!["y".into(), "missing".into(), "x".into()],
        })
        .await?
        .into_inner()
        .entries;
    let summary: Vec<_> = entries
        .iter()
        .map(|e| (e.key.as_str(), e.found, e.value.as_slice()))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("y", true, &b"2"[..]),
            ("missing", false, &b""[..]),
            ("x", true, &b"1"[..])
        ]
    );
    assert!(entries[2].ttl.expect("ttl").seconds <= 30);

    // A delete through B removes B's copy and the shared one (A's L1 keeps its own copy
    // until its TTL: instances do not invalidate each other's L1).
    let deleted = client_b
        .delete(DeleteRequest {
            namespace: "llm".into(),
            key: "x".into(),
        })
        .await?
        .into_inner()
        .deleted;
    assert!(deleted);
    assert!(!get(&mut client_b, "x").await?.found);
    let exists: i64 = redis::cmd("EXISTS")
        .arg("taskloom:cache:llm:x")
        .query_async(&mut raw)
        .await?;
    assert_eq!(exists, 0);

    // Redis goes down: readiness says so, reads answer from L1 or miss, writes land in L1.
    redis::cmd("SET")
        .arg("taskloom:cache:llm:only-in-l2")
        .arg("v")
        .arg("PX")
        .arg(60_000)
        .query_async::<()>(&mut raw)
        .await?;
    redis.stop();
    let (status, body) = http_get(a.http_addr, "/readyz").await?;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("redis"), "{body}");
    assert_eq!(get(&mut client_b, "p1").await?.tier, CacheTier::L1 as i32);
    assert!(
        !get(&mut client_a, "only-in-l2").await?.found,
        "L2 down: a miss, not an error"
    );
    set(&mut client_a, "p2", b"later", None).await?;
    let got = get(&mut client_a, "p2").await?;
    assert_eq!((got.found, got.tier), (true, CacheTier::L1 as i32));
    let err = client_a
        .delete(DeleteRequest {
            namespace: "llm".into(),
            key: "p2".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert_eq!(
        err.get_error_details().error_info().expect("info").reason,
        "UNAVAILABLE"
    );

    let (_, metrics) = http_get(a.http_addr, "/metrics").await?;
    for line in [
        r#"taskloom_cache_requests_total{op="get",result="miss",tier="none"}"#,
        r#"taskloom_cache_requests_total{op="set",result="ok",tier="none"}"#,
        r#"taskloom_cache_l2_errors_total{op="get"}"#,
        r#"taskloom_cache_l2_errors_total{op="set"}"#,
        r#"taskloom_cache_l2_errors_total{op="ping"}"#,
    ] {
        assert!(metrics.contains(line), "{line}: {metrics}");
    }
    let (_, metrics) = http_get(b.http_addr, "/metrics").await?;
    for line in [
        r#"taskloom_cache_requests_total{op="get",result="hit",tier="l2"} 1"#,
        r#"taskloom_cache_requests_total{op="batch_get",result="hit",tier="l2"} 2"#,
        "taskloom_cache_l2_request_duration_seconds_count",
    ] {
        assert!(metrics.contains(line), "{line}: {metrics}");
    }

    a.shutdown().await?;
    b.shutdown().await
}

#[tokio::test]
async fn starts_and_serves_from_l1_when_redis_is_unreachable() -> anyhow::Result<()> {
    let (server, mut client) = start(&unused_redis_url()?).await?;
    let (status, body) = http_get(server.http_addr, "/readyz").await?;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains(r#""redis""#), "{body}");
    assert_eq!(http_get(server.http_addr, "/healthz").await?.0, 200);

    set(&mut client, "k", b"v", None).await?;
    let got = get(&mut client, "k").await?;
    assert_eq!((got.found, got.tier), (true, CacheTier::L1 as i32));
    assert!(!get(&mut client, "other").await?.found);
    server.shutdown().await
}
