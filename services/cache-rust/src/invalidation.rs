//! Cross-instance invalidation through Redis pub/sub. Every Set and Delete that reaches L2
//! publishes its key on one channel in the same pipeline as the write; every instance
//! subscribes and drops its L1 copy of keys other instances wrote, so a write reaches every
//! L1 within a pub/sub delivery instead of the entry's TTL.
//!
//! Messages are `<origin>:<namespace>:<key>` (namespaces hold no `:`); an instance skips its
//! own. Pub/sub delivers at most once, so an instance that lost its subscription may have
//! missed some: after every (re)subscribe it clears its whole L1.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tracing::{info, warn};

use crate::cache::Cache;
use crate::metrics::CacheMetrics;
use crate::tier::CacheKey;

/// Waits between subscription attempts while Redis is unreachable.
const RESUBSCRIBE_MIN: Duration = Duration::from_millis(100);
const RESUBSCRIBE_MAX: Duration = Duration::from_secs(2);

/// This instance's identity on the invalidation channel of one Redis database.
#[derive(Debug, Clone)]
pub struct Invalidations {
    origin: Arc<str>,
    channel: Arc<str>,
}

impl Invalidations {
    /// For the Redis database `db` (pub/sub channels are server-wide, databases are not), with
    /// a random origin id.
    pub fn new(db: i64) -> Self {
        let origin = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        Self {
            origin: format!("{origin:016x}").into(),
            channel: format!("taskloom:cache:invalidations:db{db}").into(),
        }
    }

    /// For the database that `url` selects.
    pub fn for_url(url: &str) -> redis::RedisResult<Self> {
        let info = redis::IntoConnectionInfo::into_connection_info(url)?;
        Ok(Self::new(info.redis_settings().db()))
    }

    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// Adds `PUBLISH <channel> <message of key>` to `pipe`, its reply ignored.
    pub fn publish(&self, pipe: &mut redis::Pipeline, key: &CacheKey) {
        let message = format!("{}:{}:{}", self.origin, key.namespace, key.key);
        pipe.cmd("PUBLISH")
            .arg(&*self.channel)
            .arg(message)
            .ignore();
    }

    /// The key another instance wrote; `None` for this instance's own writes and for
    /// messages that are not invalidations.
    pub fn parse(&self, payload: &[u8]) -> Option<CacheKey> {
        let text = std::str::from_utf8(payload).ok()?;
        let (origin, rest) = text.split_once(':')?;
        let (namespace, key) = rest.split_once(':')?;
        (origin != &*self.origin && !namespace.is_empty()).then(|| CacheKey::new(namespace, key))
    }
}

/// Whether the listener is subscribed (for readiness).
#[derive(Debug, Clone, Default)]
pub struct Subscribed(Arc<AtomicBool>);

impl Subscribed {
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    fn set(&self, value: bool) {
        self.0.store(value, Ordering::Relaxed);
    }
}

/// Subscribes to the invalidation channel and applies what arrives to `cache`'s L1, until
/// the runtime stops; resubscribes (and clears L1) whenever the subscription is lost.
pub fn spawn_listener(
    client: redis::Client,
    invalidations: Invalidations,
    cache: Cache,
    metrics: Arc<CacheMetrics>,
    timeout: Duration,
) -> Subscribed {
    let subscribed = Subscribed::default();
    let state = subscribed.clone();
    tokio::spawn(async move {
        let mut wait = RESUBSCRIBE_MIN;
        loop {
            match subscribe(&client, &invalidations, timeout).await {
                Ok(pubsub) => {
                    // Writes published while no subscription was there are lost: start over.
                    cache.forget_all().await;
                    metrics.invalidation_resync();
                    state.set(true);
                    info!(
                        channel = invalidations.channel(),
                        "invalidations subscribed"
                    );
                    wait = RESUBSCRIBE_MIN;
                    let mut messages = pubsub.into_on_message();
                    while let Some(message) = messages.next().await {
                        if let Some(key) = invalidations.parse(message.get_payload_bytes()) {
                            cache.forget(&key).await;
                            metrics.invalidation_received();
                        }
                    }
                    state.set(false);
                    warn!("invalidation subscription lost; L1 may miss other instances' writes until it is back");
                }
                Err(e) => {
                    tracing::debug!(error = %e, "cannot subscribe to invalidations");
                }
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(RESUBSCRIBE_MAX);
        }
    });
    subscribed
}

async fn subscribe(
    client: &redis::Client,
    invalidations: &Invalidations,
    timeout: Duration,
) -> anyhow::Result<redis::aio::PubSub> {
    let connect = async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(invalidations.channel()).await?;
        anyhow::Ok(pubsub)
    };
    tokio::time::timeout(timeout * 2, connect)
        .await
        .map_err(|_| anyhow::anyhow!("no answer within {:?}", timeout * 2))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_skip_their_origin() {
        let a = Invalidations::new(1);
        let b = Invalidations::new(1);
        assert_eq!(a.channel(), "taskloom:cache:invalidations:db1");
        let mut pipe = redis::pipe();
        a.publish(&mut pipe, &CacheKey::new("llm", "k:with:colons"));
        let packed = String::from_utf8_lossy(&pipe.get_packed_pipeline()).into_owned();
        let message = packed.lines().last().expect("message").as_bytes().to_vec();
        assert_eq!(
            b.parse(&message),
            Some(CacheKey::new("llm", "k:with:colons"))
        );
        assert_eq!(a.parse(&message), None, "own writes are skipped");
        assert_eq!(b.parse(b"garbage"), None);
        assert_eq!(
            Invalidations::for_url("redis://h:1/3")
                .expect("url")
                .channel(),
            "taskloom:cache:invalidations:db3"
        );
    }
}
