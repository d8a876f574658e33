//! The cache service's settings (section `cache:` of the config file): common flags, L1
//! sizing and TTLs, the L2 Redis URL.

use std::collections::BTreeMap;
use std::time::Duration;

use clap::Parser;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use taskloom_common::config::parse_duration;
use taskloom_common::{CommonArgs, ServiceSettings};

use crate::l1::L1Config;
use crate::l2::L2Config;

pub const DEFAULT_GRPC_ADDR: &str = "127.0.0.1:50052";
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:9102";

#[derive(Parser, Debug, Clone, Serialize, Deserialize)]
#[command(name = "taskloom-cache", version, about = "Taskloom cache service")]
pub struct Settings {
    #[command(flatten)]
    #[serde(flatten)]
    pub common: CommonArgs,

    /// TTL of entries set without one, in every namespace without its own default.
    #[arg(long, env = "TASKLOOM_CACHE_DEFAULT_TTL", default_value = "1h", value_parser = parse_duration)]
    #[serde(with = "humantime_serde")]
    pub default_ttl: Duration,

    /// Per-namespace default TTLs, e.g. `llm=24h,tool=5m` (in the file: a mapping).
    #[arg(long = "namespace-ttl", env = "TASKLOOM_CACHE_NAMESPACE_TTLS", value_delimiter = ',', value_parser = parse_namespace_ttl)]
    #[serde(with = "namespace_ttl_map")]
    pub namespace_ttls: Vec<NamespaceTtl>,

    /// L1 capacity in bytes (keys and values).
    #[arg(long, env = "TASKLOOM_CACHE_MAX_BYTES", default_value_t = 256 * 1024 * 1024)]
    pub max_bytes: u64,

    /// Redis URL of the shared L2 tier, e.g. `redis://:PASSWORD@host:6379/1`; empty = L1 only.
    #[arg(long, env = "TASKLOOM_REDIS_URL", default_value = "", value_parser = parse_redis_url)]
    pub redis_url: String,

    /// Limit of each Redis connect and command; a slower Redis counts as down.
    #[arg(long, env = "TASKLOOM_CACHE_REDIS_TIMEOUT", default_value = "250ms", value_parser = parse_duration)]
    #[serde(with = "humantime_serde")]
    pub redis_timeout: Duration,
}

impl ServiceSettings for Settings {
    const SECTION: &'static str = "cache";
    const DEFAULT_GRPC_ADDR: &'static str = DEFAULT_GRPC_ADDR;
    const DEFAULT_HTTP_ADDR: &'static str = DEFAULT_HTTP_ADDR;

    const SECRET_URLS: &'static [&'static str] = &["redis_url"];

    fn common(&self) -> &CommonArgs {
        &self.common
    }

    /// The file's values did not pass through clap's parsers: check them here.
    fn validate(&self) -> Result<(), String> {
        parse_redis_url(&self.redis_url).map_err(|e| format!("redis_url: {e}"))?;
        if let Some(n) = self.namespace_ttls.iter().find(|n| n.namespace.is_empty()) {
            return Err(format!("namespace_ttls: empty namespace (ttl {:?})", n.ttl));
        }
        if self.max_bytes == 0 {
            return Err("max_bytes: must be more than 0".into());
        }
        Ok(())
    }
}

fn parse_redis_url(s: &str) -> Result<String, String> {
    if !s.is_empty() {
        redis::Client::open(s).map_err(|e| format!("not a Redis URL: {e}"))?;
    }
    Ok(s.to_string())
}

#[derive(Debug, Clone, PartialEq)]
pub struct NamespaceTtl {
    pub namespace: String,
    pub ttl: Duration,
}

/// `namespace_ttls` as a mapping of namespace to a duration like `24h`.
mod namespace_ttl_map {
    use super::*;

    pub fn serialize<S: Serializer>(ttls: &[NamespaceTtl], s: S) -> Result<S::Ok, S::Error> {
        let map: BTreeMap<&str, String> = ttls
            .iter()
            .map(|n| {
                (
                    n.namespace.as_str(),
                    humantime::format_duration(n.ttl).to_string(),
                )
            })
            .collect();
        map.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<NamespaceTtl>, D::Error> {
        let map = BTreeMap::<String, String>::deserialize(d)?;
        map.into_iter()
            .map(|(namespace, ttl)| {
                let ttl = parse_duration(&ttl)
                    .map_err(|e| serde::de::Error::custom(format!("{namespace}: {e}")))?;
                Ok(NamespaceTtl { namespace, ttl })
            })
            .collect()
    }
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
    use taskloom_common::config::{load, masked, ConfigError};

    fn load_args(args: &[&str]) -> Result<Settings, ConfigError> {
        load::<Settings, _, _>(std::iter::once("taskloom-cache").chain(args.iter().copied()))
            .map(|l| l.settings)
    }

    #[test]
    fn defaults_and_namespace_ttls() {
        let s = load_args(&["--namespace-ttl", "llm=24h,tool=5m"]).expect("parse");
        assert_eq!(s.common.grpc_addr.port(), 50052);
        assert_eq!(s.default_ttl, Duration::from_secs(3600));
        assert_eq!(s.max_bytes, 256 * 1024 * 1024);
        let l1 = s.l1();
        assert_eq!(l1.namespace_ttls["tool"], Duration::from_secs(300));
        assert!(s.l2().is_none(), "L1 only by default");
    }

    #[test]
    fn redis_url_enables_l2_and_is_printed_masked() {
        let s = load_args(&[
            "--redis-url",
            "redis://cache:s3cret@redis.internal:6380/1",
            "--redis-timeout",
            "100ms",
        ])
        .expect("parse");
        let l2 = s.l2().expect("L2 configured");
        assert_eq!(l2.url, "redis://cache:s3cret@redis.internal:6380/1");
        assert_eq!(l2.timeout, Duration::from_millis(100));
        let printed = masked(&s).to_string();
        assert!(!printed.contains("s3cret"), "{printed}");
        assert!(
            printed.contains(r#""redis_url":"redis://cache:****@redis.internal:6380/1""#),
            "{printed}"
        );
        assert!(printed.contains(r#""redis_timeout":"100ms""#), "{printed}");
    }

    #[test]
    fn bad_redis_url_is_rejected_from_flags_and_from_the_file() {
        let e = load_args(&["--redis-url", "http://not-redis"]).unwrap_err();
        assert!(e.to_string().contains("not a Redis URL"), "{e}");
        let file = tempfile::NamedTempFile::new().expect("temp");
        std::fs::write(file.path(), "cache:\n  redis_url: http://not-redis\n").expect("write");
        let e = load_args(&["--config", file.path().to_str().expect("utf-8")]).unwrap_err();
        assert!(e.to_string().contains("redis_url: not a Redis URL"), "{e}");
    }

    #[test]
    fn the_file_section_reads_namespace_ttls_as_a_mapping() {
        let file = tempfile::NamedTempFile::new().expect("temp");
        std::fs::write(
            file.path(),
            "cache:\n  namespace_ttls: {llm: 24h, tool: 5m}\n  max_bytes: 1024\n",
        )
        .expect("write");
        let s = load_args(&["--config", file.path().to_str().expect("utf-8")]).expect("load");
        assert_eq!(s.max_bytes, 1024);
        assert_eq!(s.l1().namespace_ttls["llm"], Duration::from_secs(24 * 3600));
        let printed = masked(&s).to_string();
        assert!(
            printed.contains(r#""namespace_ttls":{"llm":"1day","tool":"5m"}"#),
            "{printed}"
        );
    }
}
