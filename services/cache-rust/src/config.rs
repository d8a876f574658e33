//! The cache service's settings: common flags, L1 sizing and TTLs, the L2 Redis URL.

use std::time::Duration;

use clap::Parser;
use serde::{Serialize, Serializer};
use taskloom_common::config::{parse_duration, serialize_duration};
use taskloom_common::CommonArgs;

use crate::l1::L1Config;
use crate::l2::L2Config;

pub const DEFAULT_GRPC_ADDR: &str = "127.0.0.1:50052";
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:9102";

#[derive(Parser, Debug, Clone, Serialize)]
#[command(name = "taskloom-cache", version, about = "Taskloom cache service")]
pub struct Settings {
    #[command(flatten)]
    #[serde(flatten)]
    pub common: CommonArgs,

    /// TTL of entries set without one, in every namespace without its own default.
    #[arg(long, env = "TASKLOOM_CACHE_DEFAULT_TTL", default_value = "1h", value_parser = parse_duration)]
    #[serde(serialize_with = "serialize_duration")]
    pub default_ttl: Duration,

    /// Per-namespace default TTLs, e.g. `llm=24h,tool=5m`.
    #[arg(long = "namespace-ttl", env = "TASKLOOM_CACHE_NAMESPACE_TTLS", value_delimiter = ',', value_parser = parse_namespace_ttl)]
    pub namespace_ttls: Vec<NamespaceTtl>,

    /// L1 capacity in bytes (keys and values).
    #[arg(long, env = "TASKLOOM_CACHE_MAX_BYTES", default_value_t = 256 * 1024 * 1024)]
    pub max_bytes: u64,

    /// Redis URL of the shared L2 tier, e.g. `redis://:PASSWORD@host:6379/1`; empty = L1 only.
    #[arg(long, env = "TASKLOOM_REDIS_URL", default_value = "", value_parser = parse_redis_url)]
    #[serde(serialize_with = "serialize_masked_url")]
    pub redis_url: String,

    /// Limit of each Redis connect and command; a slower Redis counts as down.
    #[arg(long, env = "TASKLOOM_CACHE_REDIS_TIMEOUT", default_value = "250ms", value_parser = parse_duration)]
    #[serde(serialize_with = "serialize_duration")]
    pub redis_timeout: Duration,
}

fn parse_redis_url(s: &str) -> Result<String, String> {
    if !s.is_empty() {
        redis::Client::open(s).map_err(|e| format!("not a Redis URL: {e}"))?;
    }
    Ok(s.to_string())
}

/// The URL with its password (and `pass`/`password` query values) replaced by `****`.
pub fn mask_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let (authority_end, _) = rest
        .char_indices()
        .find(|&(_, c)| c == '/' || c == '?')
        .unwrap_or((rest.len(), ' '));
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:****@{host}"),
            // `redis://secret@host`: some clients read a lone userinfo as the password.
            None => format!("****@{host}"),
        },
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((name, _)) if matches!(name, "pass" | "password") => {
                        format!("{name}=****")
                    }
                    _ => pair.to_string(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_string(),
    };
    if scheme.is_empty() && !url.contains("://") {
        format!("{authority}{tail}")
    } else {
        format!("{scheme}://{authority}{tail}")
    }
}

fn serialize_masked_url<S: Serializer>(url: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&mask_url(url))
}

#[derive(Debug, Clone, Serialize)]
pub struct NamespaceTtl {
    pub namespace: String,
    #[serde(serialize_with = "serialize_duration")]
    pub ttl: Duration,
}

fn parse_namespace_ttl(s: &str) -> Result<NamespaceTtl, String> {
    let (namespace, ttl) = s
        .split_once('=')
        .ok_or_else(|| format!("expected NAMESPACE=TTL, got {s:?}"))?;
    if namespace.is_empty() {
        return Err(format!("empty namespace in {s:?}"));
    }
    Ok(NamespaceTtl {
        namespace: namespace.to_string(),
        ttl: parse_duration(ttl)?,
    })
}

impl Settings {
    pub fn parse_args() -> Self {
        taskloom_common::parse_config(DEFAULT_GRPC_ADDR, DEFAULT_HTTP_ADDR)
    }

    /// The L2 tier's settings, `None` without a Redis URL (L1 only).
    pub fn l2(&self) -> Option<L2Config> {
        (!self.redis_url.is_empty()).then(|| L2Config {
            url: self.redis_url.clone(),
            timeout: self.redis_timeout,
            persistent_ttl: self.default_ttl,
        })
    }

    pub fn l1(&self) -> L1Config {
        L1Config {
            max_bytes: self.max_bytes,
            default_ttl: self.default_ttl,
            namespace_ttls: self
                .namespace_ttls
                .iter()
                .map(|n| (n.namespace.clone(), n.ttl))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use taskloom_common::config::parse_config_from;

    #[test]
    fn defaults_and_namespace_ttls() {
        let s: Settings = parse_config_from(
            ["taskloom-cache", "--namespace-ttl", "llm=24h,tool=5m"],
            DEFAULT_GRPC_ADDR,
            DEFAULT_HTTP_ADDR,
        )
        .expect("parse");
        assert_eq!(s.common.grpc_addr.port(), 50052);
        assert_eq!(s.default_ttl, Duration::from_secs(3600));
        assert_eq!(s.max_bytes, 256 * 1024 * 1024);
        let l1 = s.l1();
        assert_eq!(l1.namespace_ttls["tool"], Duration::from_secs(300));
        assert!(s.l2().is_none(), "L1 only by default");
    }

    #[test]
    fn redis_url_enables_l2_and_is_printed_masked() {
        let s: Settings = parse_config_from(
            [
                "taskloom-cache",
                "--redis-url",
                "redis://cache:s3cret@redis.internal:6380/1",
                "--redis-timeout",
                "100ms",
            ],
            DEFAULT_GRPC_ADDR,
            DEFAULT_HTTP_ADDR,
        )
        .expect("parse");
        let l2 = s.l2().expect("L2 configured");
        assert_eq!(l2.url, "redis://cache:s3cret@redis.internal:6380/1");
        assert_eq!(l2.timeout, Duration::from_millis(100));
        let printed = serde_json::to_string(&s).expect("serialize");
        assert!(!printed.contains("s3cret"), "{printed}");
        assert!(
            printed.contains(r#""redis_url":"redis://cache:****@redis.internal:6380/1""#),
            "{printed}"
        );
        assert!(printed.contains(r#""redis_timeout":"100ms""#), "{printed}");
    }

    #[test]
    fn bad_redis_url_is_rejected() {
        let e = parse_config_from::<Settings, _, _>(
            ["taskloom-cache", "--redis-url", "http://not-redis"],
            DEFAULT_GRPC_ADDR,
            DEFAULT_HTTP_ADDR,
        )
        .unwrap_err();
        assert!(e.to_string().contains("not a Redis URL"), "{e}");
    }

    #[test]
    fn masking_covers_every_url_form() {
        for (url, masked) in [
            ("", ""),
            ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
            ("redis://:pw@host:6379", "redis://:****@host:6379"),
            ("rediss://user:p@ss:w@host/2", "rediss://user:****@host/2"),
            ("redis://pw@host", "redis://****@host"),
            (
                "redis+unix:///tmp/r.sock?db=1&pass=pw",
                "redis+unix:///tmp/r.sock?db=1&pass=****",
            ),
        ] {
            assert_eq!(mask_url(url), masked, "{url}");
        }
    }
}
