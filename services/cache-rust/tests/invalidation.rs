//! Two real `taskloom-cache` processes sharing one real `redis-server`: a Delete or a Set
//! through one reaches the other's L1 through Redis pub/sub, well before the entry's TTL.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{get, set, wait_ready, WITHIN};
use taskloom_cache::testing::RedisServer;
use taskloom_common::testing::http_get;
use taskloom_proto::v1::cache_service_client::CacheServiceClient;
use taskloom_proto::v1::{CacheTier, DeleteRequest, GetResponse};
use tonic::transport::Channel;

/// A `taskloom-cache` process on ports it chose, killed on drop.
struct CacheProcess {
    child: Child,
    grpc_addr: SocketAddr,
    http_addr: SocketAddr,
}

impl CacheProcess {
    fn start(redis_url: &str) -> anyhow::Result<Self> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_taskloom-cache"))
            .args(["--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
            .args(["--redis-url", redis_url, "--default-ttl", "1h"])
            .env_remove("TASKLOOM_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = child.stderr.take().expect("piped");
        let mut lines = BufReader::new(stderr).lines();
        // The "serving" log line names the ports the process bound.
        let serving = loop {
            let Some(line) = lines.next() else {
                let status = child.wait()?;
                anyhow::bail!("taskloom-cache exited ({status}) before serving");
            };
            let line: serde_json::Value = serde_json::from_str(&line?)?;
            if line["msg"] == "serving" {
                break line;
            }
        };
        // Keep reading, so the process never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        let addr = |name: &str| -> anyhow::Result<SocketAddr> {
            Ok(serving[name]
                .as_str()
                .ok_or_else(|| anyhow::anyhow!("no {name} in {serving}"))?
                .parse()?)
        };
        Ok(Self {
            grpc_addr: addr("grpc_addr")?,
            http_addr: addr("http_addr")?,
            child,
        })
    }

    async fn client(&self) -> anyhow::Result<CacheServiceClient<Channel>> {
        Ok(CacheServiceClient::connect(format!("http://{}", self.grpc_addr)).await?)
    }

    async fn metric(&self, name: &str) -> anyhow::Result<f64> {
        let (_, text) = http_get(self.http_addr, "/metrics").await?;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .ok_or_else(|| anyhow::anyhow!("no {name} in {text}"))
    }
}

impl Drop for CacheProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
    wait_ready(a.http_addr).await?;
    wait_ready(b.http_addr).await?;
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
