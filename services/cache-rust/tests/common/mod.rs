//! What the black-box tests of the cache share: calls in namespace `llm`, and waiting for
//! readiness.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use taskloom_common::testing::http_get;
use taskloom_proto::v1::cache_service_client::CacheServiceClient;
use taskloom_proto::v1::{GetRequest, GetResponse, SetRequest};
use tonic::transport::Channel;

/// How long a test waits for what should happen at once on an idle machine: a bound for a
/// loaded one, not a speed assertion.
pub const WITHIN: Duration = Duration::from_secs(10);

/// Waits until `/readyz` at `http_addr` says ready: Redis answers and the invalidation
/// subscription is up.
pub async fn wait_ready(http_addr: SocketAddr) -> anyhow::Result<()> {
    let deadline = Instant::now() + WITHIN;
    loop {
        let (status, body) = http_get(http_addr, "/readyz").await?;
        if status == 200 {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "not ready: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn get(
    client: &mut CacheServiceClient<Channel>,
    key: &str,
) -> anyhow::Result<GetResponse> {
    Ok(client
        .get(GetRequest {
            namespace: "llm".into(),
            key: key.into(),
        })
        .await?
        .into_inner())
}

pub async fn set(
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
