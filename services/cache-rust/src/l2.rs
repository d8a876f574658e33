//! The shared tier: Redis through redis-rs's `ConnectionManager` (one multiplexed
//! connection, reconnected on I/O errors). Keys are `taskloom:cache:<namespace>:<key>`,
//! values are stored with the entry's TTL (`SET … PX`), and a read returns the remaining TTL
//! (`PTTL`) so that an L1 fill expires when the L2 entry does. Every write also publishes
//! the key on the invalidation channel, in the same pipeline ([`crate::invalidation`]).

use std::future::Future;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::io::tcp::TcpSettings;
use redis::{IntoConnectionInfo, RedisError, Value};

use crate::invalidation::Invalidations;
use crate::tier::{CacheKey, Entry, Tier, TierError, TierKind, MAX_TTL};

/// Prefix of every key the cache writes to Redis.
pub const KEY_PREFIX: &str = "taskloom:cache:";

#[derive(Debug, Clone)]
pub struct L2Config {
    /// `redis://[:password@]host:port[/db]`, `rediss://…` or `redis+unix:///path`.
    pub url: String,
    /// Limit of each connect attempt and each command; a slower Redis counts as down.
    pub timeout: Duration,
    /// TTL given to an L1 fill of a Redis key that has no expiry (not written by this cache).
    pub persistent_ttl: Duration,
}

/// A client for `url` whose connections have `TCP_NODELAY` set: redis-rs leaves Nagle's
/// algorithm on, which holds a small command back until the previous reply's ACK.
pub fn client(url: &str) -> Result<redis::Client, RedisError> {
    let info = url
        .into_connection_info()?
        .set_tcp_settings(TcpSettings::default().set_nodelay(true));
    redis::Client::open(info)
}

#[derive(Clone)]
pub struct RedisTier {
    conn: ConnectionManager,
    timeout: Duration,
    persistent_ttl: Duration,
    invalidations: Invalidations,
}

impl RedisTier {
    /// Connects lazily: a Redis that is down at start makes operations fail (and readiness
    /// say so) until it is reachable, instead of stopping the service. Must be called
    /// inside a tokio runtime.
    pub fn new(config: &L2Config, invalidations: Invalidations) -> Result<Self, RedisError> {
        let client = client(&config.url)?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.timeout))
            .set_response_timeout(Some(config.timeout))
            // One attempt per reconnect: a cache answers from L1 rather than waiting out
            // backoff. The next command after a failure starts the next attempt.
            .set_number_of_retries(0);
        let conn = ConnectionManager::new_lazy_with_config(client, manager_config)?;
        Ok(Self {
            conn,
            timeout: config.timeout,
            persistent_ttl: config.persistent_ttl,
            invalidations,
        })
    }

    /// The Redis key of `key`.
    pub fn redis_key(key: &CacheKey) -> String {
        format!("{KEY_PREFIX}{}:{}", key.namespace, key.key)
    }

    /// Runs a command with the configured limit on top of redis-rs's own timeouts (which
    /// do not cover waiting for a reconnect in progress).
    async fn run<T>(
        &self,
        command: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<T, TierError> {
        match tokio::time::timeout(self.timeout * 2, command).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(tier_error(e.to_string())),
            Err(_) => Err(tier_error(format!(
                "no answer within {}",
                humantime::format_duration(self.timeout * 2)
            ))),
        }
    }

    /// A `GET` answer and its `PTTL` as an entry (`None` when missing or expiring now).
    fn entry(&self, value: Option<Vec<u8>>, pttl_ms: i64) -> Option<Entry> {
        let value = value?;
        let ttl = match pttl_ms {
            // -1: the key has no expiry (set by someone else); -2 and 0: gone.
            -1 => self.persistent_ttl,
            ms if ms > 0 => Duration::from_millis(ms.unsigned_abs()),
            _ => return None,
        };
        Some(Entry::new(value, ttl))
    }
}

fn tier_error(message: String) -> TierError {
    TierError {
        tier: TierKind::L2,
        message,
    }
}

/// `PX` milliseconds of an entry: at least 1 (Redis rejects 0), at most [`MAX_TTL`].
fn px_millis(entry: &Entry) -> u64 {
    let ms = entry.remaining_ttl().min(MAX_TTL).as_millis();
    u64::try_from(ms).unwrap_or(u64::MAX).max(1)
}

impl RedisTier {
    /// `SET … PX` and the key's invalidation message, their replies ignored.
    fn set_commands(&self, pipe: &mut redis::Pipeline, key: &CacheKey, entry: &Entry) {
        pipe.cmd("SET")
            .arg(Self::redis_key(key))
            .arg(&*entry.value)
            .arg("PX")
            .arg(px_millis(entry))
            .ignore();
        self.invalidations.publish(pipe, key);
    }
}

fn parse<T: redis::FromRedisValue>(value: Value) -> Result<T, TierError> {
    redis::from_redis_value(value).map_err(|e| tier_error(format!("unexpected reply: {e}")))
}

impl Tier for RedisTier {
    fn kind(&self) -> TierKind {
        TierKind::L2
    }

    fn get<'a>(&'a self, key: &'a CacheKey) -> BoxFuture<'a, Result<Option<Entry>, TierError>> {
        async move {
            let redis_key = Self::redis_key(key);
            let mut conn = self.conn.clone();
            // MULTI/EXEC: the value and its TTL from the same moment.
            let (value, pttl): (Option<Vec<u8>>, i64) = self
                .run(
                    redis::pipe()
                        .atomic()
                        .cmd("GET")
                        .arg(&redis_key)
                        .cmd("PTTL")
                        .arg(&redis_key)
                        .query_async(&mut conn),
                )
                .await?;
            Ok(self.entry(value, pttl))
        }
        .boxed()
    }

    fn set(&self, key: CacheKey, entry: Entry) -> BoxFuture<'_, Result<(), TierError>> {
        async move {
            let mut conn = self.conn.clone();
            let mut pipe = redis::pipe();
            self.set_commands(&mut pipe, &key, &entry);
            self.run(pipe.query_async::<()>(&mut conn)).await
        }
        .boxed()
    }

    fn delete<'a>(&'a self, key: &'a CacheKey) -> BoxFuture<'a, Result<bool, TierError>> {
        async move {
            let mut conn = self.conn.clone();
            let mut pipe = redis::pipe();
            pipe.cmd("DEL").arg(Self::redis_key(key));
            self.invalidations.publish(&mut pipe, key);
            let (removed,): (i64,) = self.run(pipe.query_async(&mut conn)).await?;
            Ok(removed > 0)
        }
        .boxed()
    }

    /// One `MULTI; MGET k…; PTTL k …; EXEC` round trip.
    fn get_many<'a>(
        &'a self,
        keys: &'a [CacheKey],
    ) -> BoxFuture<'a, Result<Vec<Option<Entry>>, TierError>> {
        async move {
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            let redis_keys: Vec<String> = keys.iter().map(Self::redis_key).collect();
            let mut pipe = redis::pipe();
            pipe.atomic().cmd("MGET").arg(&redis_keys);
            for k in &redis_keys {
                pipe.cmd("PTTL").arg(k);
            }
            let mut conn = self.conn.clone();
            let replies: Vec<Value> = self.run(pipe.query_async(&mut conn)).await?;
            if replies.len() != keys.len() + 1 {
                return Err(tier_error(format!(
                    "unexpected reply: {} results for {} commands",
                    replies.len(),
                    keys.len() + 1
                )));
            }
            let mut replies = replies.into_iter();
            let values: Vec<Option<Vec<u8>>> = parse(replies.next().unwrap_or(Value::Nil))?;
            values
                .into_iter()
                .zip(replies)
                .map(|(value, pttl)| Ok(self.entry(value, parse(pttl)?)))
                .collect()
        }
        .boxed()
    }

    /// One pipelined round trip of `SET … PX` (and their invalidations).
    fn set_many(&self, entries: Vec<(CacheKey, Entry)>) -> BoxFuture<'_, Result<(), TierError>> {
        async move {
            if entries.is_empty() {
                return Ok(());
            }
            let mut pipe = redis::pipe();
            for (key, entry) in &entries {
                self.set_commands(&mut pipe, key, entry);
            }
            let mut conn = self.conn.clone();
            self.run(pipe.query_async::<()>(&mut conn)).await
        }
        .boxed()
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), TierError>> {
        async move {
            let mut conn = self.conn.clone();
            let pong: String = self.run(redis::cmd("PING").query_async(&mut conn)).await?;
            if pong == "PONG" {
                Ok(())
            } else {
                Err(tier_error(format!("PING answered {pong:?}")))
            }
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::RedisServer;

    fn tier(url: String) -> RedisTier {
        RedisTier::new(
            &L2Config {
                url,
                timeout: Duration::from_secs(1),
                persistent_ttl: Duration::from_secs(3600),
            },
            Invalidations::new(0),
        )
        .expect("client")
    }

    fn entry(value: &[u8], ttl: Duration) -> Entry {
        Entry::new(value.to_vec(), ttl)
    }

    #[tokio::test]
    async fn set_get_delete_under_the_documented_key() -> anyhow::Result<()> {
        let Some(redis) = RedisServer::start("set_get_delete_under_the_documented_key").await?
        else {
            return Ok(());
        };
        let l2 = tier(redis.url());
        let key = CacheKey::new("llm", "prompt:1");
        l2.set(key.clone(), entry(b"answer", Duration::from_secs(60)))
            .await?;

        let mut raw = redis.connection().await?;
        let stored: Option<Vec<u8>> = redis::cmd("GET")
            .arg("taskloom:cache:llm:prompt:1")
            .query_async(&mut raw)
            .await?;
        assert_eq!(stored.as_deref(), Some(&b"answer"[..]));
        let pttl: i64 = redis::cmd("PTTL")
            .arg("taskloom:cache:llm:prompt:1")
            .query_async(&mut raw)
            .await?;
        assert!(pttl > 0 && pttl <= 60_000, "{pttl}");

        let got = l2.get(&key).await?.expect("hit");
        assert_eq!(&*got.value, b"answer");
        assert!(got.remaining_ttl() <= Duration::from_secs(60));
        assert!(l2.get(&CacheKey::new("tool", "prompt:1")).await?.is_none());
        assert!(l2.delete(&key).await?);
        assert!(!l2.delete(&key).await?);
        assert!(l2.get(&key).await?.is_none());
        l2.ping().await?;
        Ok(())
    }

    #[tokio::test]
    async fn ttl_is_honoured() -> anyhow::Result<()> {
        let Some(redis) = RedisServer::start("ttl_is_honoured").await? else {
            return Ok(());
        };
        let l2 = tier(redis.url());
        let short = CacheKey::new("ns", "short");
        let long = CacheKey::new("ns", "long");
        l2.set(short.clone(), entry(b"v", Duration::from_millis(50)))
            .await?;
        l2.set(long.clone(), entry(b"v", Duration::from_secs(60)))
            .await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(l2.get(&short).await?.is_none());
        assert!(l2.get(&long).await?.is_some());

        // A key without expiry (written by someone else) gets the configured fallback TTL.
        let mut raw = redis.connection().await?;
        redis::cmd("SET")
            .arg("taskloom:cache:ns:forever")
            .arg("v")
            .query_async::<()>(&mut raw)
            .await?;
        let forever = l2.get(&CacheKey::new("ns", "forever")).await?.expect("hit");
        assert!(forever.remaining_ttl() > Duration::from_secs(3500));
        Ok(())
    }

    #[tokio::test]
    async fn batch_ops_keep_order_in_one_round_trip() -> anyhow::Result<()> {
        let Some(redis) = RedisServer::start("batch_ops_keep_order_in_one_round_trip").await?
        else {
            return Ok(());
        };
        let l2 = tier(redis.url());
        let key = |k: &str| CacheKey::new("ns", k);
        l2.set_many(vec![
            (key("a"), entry(b"1", Duration::from_secs(60))),
            (key("c"), entry(b"3", Duration::from_secs(30))),
        ])
        .await?;
        let got = l2.get_many(&[key("a"), key("b"), key("c")]).await?;
        let values: Vec<_> = got.iter().map(|e| e.as_ref().map(|e| &*e.value)).collect();
        assert_eq!(values, vec![Some(&b"1"[..]), None, Some(&b"3"[..])]);
        let c = got[2].as_ref().expect("c");
        assert!(c.remaining_ttl() <= Duration::from_secs(30));
        assert!(l2.get_many(&[]).await?.is_empty());
        Ok(())
    }

    #[tokio::test]
    async fn redis_down_is_an_error_not_a_hang() -> anyhow::Result<()> {
        let Some(mut redis) = RedisServer::start("redis_down_is_an_error_not_a_hang").await? else {
            return Ok(());
        };
        let l2 = tier(redis.url());
        l2.ping().await?;
        redis.stop();
        let key = CacheKey::new("ns", "k");
        assert_eq!(l2.ping().await.unwrap_err().tier, TierKind::L2);
        assert!(l2.get(&key).await.is_err());
        assert!(l2
            .set(key.clone(), entry(b"v", Duration::from_secs(1)))
            .await
            .is_err());
        assert!(l2.get_many(std::slice::from_ref(&key)).await.is_err());

        let never = tier(crate::testing::unused_redis_url()?);
        assert!(never.ping().await.is_err());
        Ok(())
    }
}
