//! Two cache servers started with `--redis-url` sharing one real `redis-server`, driven with
//! the generated client and the HTTP endpoints: L2 sharing, batch ops, Redis going down.

mod common;

use std::time::Duration;

use common::{get, set, wait_ready};

use taskloom_cache::testing::{unused_redis_url, RedisServer};
use taskloom_cache::{config::Settings, service_spec};
use taskloom_common::config::parse_config_from;
use taskloom_common::testing::{
    connected_tcp_sockets, http_get, wait_for_tcp_socket, TcpSocket, TestServer,
};
use taskloom_proto::v1::cache_service_client::CacheServiceClient;
use taskloom_proto::v1::{BatchGetRequest, BatchSetRequest, CacheEntry, CacheTier, DeleteRequest};
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

#[tokio::test]
async fn instances_share_l2_and_degrade_to_l1_when_redis_goes_down() -> anyhow::Result<()> {
    let Some(mut redis) =
        RedisServer::start("instances_share_l2_and_degrade_to_l1_when_redis_goes_down").await?
    else {
        return Ok(());
    };
    let (a, mut client_a) = start(&redis.url()).await?;
    let (b, mut client_b) = start(&redis.url()).await?;
    wait_ready(a.http_addr).await?;
    wait_ready(b.http_addr).await?;

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

    // A delete through B removes B's copy and the shared one (and, through pub/sub, A's:
    // tests/invalidation.rs).
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

/// redis-rs leaves Nagle's algorithm on unless told: both the cache's connections to Redis
/// (commands and the invalidation subscription) must have TCP_NODELAY set.
#[tokio::test]
async fn connections_to_redis_have_tcp_nodelay() -> anyhow::Result<()> {
    let Some(redis) = RedisServer::start("connections_to_redis_have_tcp_nodelay").await? else {
        return Ok(());
    };
    let (server, mut client) = start(&redis.url()).await?;
    set(&mut client, "k", b"v", None).await?;
    wait_ready(server.http_addr).await?;
    let to_redis = |s: &TcpSocket| s.peer.port() == redis.port();
    wait_for_tcp_socket(to_redis).await?;
    let sockets: Vec<TcpSocket> = connected_tcp_sockets()?
        .into_iter()
        .filter(to_redis)
        .collect();
    assert!(sockets.len() >= 2, "commands and subscription: {sockets:?}");
    for socket in &sockets {
        assert!(socket.nodelay, "Nagle is on: {socket:?}");
    }
    server.shutdown().await
}
