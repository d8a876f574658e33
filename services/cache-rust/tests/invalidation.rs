//! Two real `taskloom-cache` processes sharing one real `redis-server`: a Delete or a Set
//! through one reaches the other's L1 through Redis pub/sub, well before the entry's TTL.

mod common;

use std::time::{Duration, Instant};

use common::{get, set, wait_ready, WITHIN};
use taskloom_cache::testing::RedisServer;
use taskloom_common::testing::{http_get, ServiceProcess};
use taskloom_proto::v1::cache_service_client::CacheServiceClient;
use taskloom_proto::v1::{CacheTier, DeleteRequest, GetResponse};
use tonic::transport::Channel;

/// A `taskloom-cache` process on ports it chose, killed on drop.
struct CacheProcess(ServiceProcess);

impl CacheProcess {
    fn start(redis_url: &str) -> anyhow::Result<Self> {
        Ok(Self(ServiceProcess::start(
            env!("CARGO_BIN_EXE_taskloom-cache"),
            &["--redis-url", redis_url, "--default-ttl", "1h"],
            &[],
        )?))
    }

    async fn client(&self) -> anyhow::Result<CacheServiceClient<Channel>> {
        Ok(CacheServiceClient::connect(self.0.grpc_url()).await?)
    }

    async fn metric(&self, name: &str) -> anyhow::Result<f64> {
        let (_, text) = http_get(self.0.http_addr, "/metrics").await?;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .ok_or_else(|| anyhow::anyhow!("no {name} in {text}"))
    }
}

/// Reads `key` through `client` until `done` holds for the answer.
async fn read_until(
    client: &mut CacheServiceClient<Channel>,
    key: &str,
    done: impl Fn(&GetResponse) -> bool,
) -> anyhow::Result<GetResponse> {
    let deadline = Instant::now() + WITHIN;
    loop {
        let got = get(client, key).await?;
        if done(&got) {
            return Ok(got);
        }
        anyhow::ensure!(Instant::now() < deadline, "{key}: still {got:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_write_through_one_instance_reaches_the_l1_of_the_other() -> anyhow::Result<()> {
    let Some(redis) =
        RedisServer::start("a_write_through_one_instance_reaches_the_l1_of_the_other").await?
    else {
        return Ok(());
    };
    let (a, b) = (
        CacheProcess::start(&redis.url())?,
        CacheProcess::start(&redis.url())?,
    );
    wait_ready(a.0.http_addr).await?;
    wait_ready(b.0.http_addr).await?;
    let (mut client_a, mut client_b) = (a.client().await?, b.client().await?);

    // B holds "k" in its L1 (an hour's TTL).
    set(&mut client_a, "k", b"v1", None).await?;
    assert_eq!(get(&mut client_b, "k").await?.tier, CacheTier::L2 as i32);
    let held = get(&mut client_b, "k").await?;
    assert_eq!(
        (held.tier, held.value.as_slice()),
        (CacheTier::L1 as i32, &b"v1"[..])
    );

    // A Set through A: B answers the new value, read again from L2.
    set(&mut client_a, "k", b"v2", None).await?;
    let got = read_until(&mut client_b, "k", |g| g.value == b"v2").await?;
    assert_eq!(got.tier, CacheTier::L2 as i32, "{got:?}");
    assert_eq!(get(&mut client_b, "k").await?.tier, CacheTier::L1 as i32);

    // A Delete through A: B stops answering it.
    client_a
        .delete(DeleteRequest {
            namespace: "llm".into(),
            key: "k".into(),
        })
        .await?;
    read_until(&mut client_b, "k", |g| !g.found).await?;

    assert!(
        b.metric("taskloom_cache_invalidations_received_total")
            .await?
            >= 2.0
    );
    // A skips its own messages: its L1 was written by the writes themselves.
    assert_eq!(
        a.metric("taskloom_cache_invalidations_received_total")
            .await?,
        0.0
    );
    Ok(())
}
