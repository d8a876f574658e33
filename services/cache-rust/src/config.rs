//! The cache service's settings: common flags plus L1 sizing and TTLs.

use std::time::Duration;

use clap::Parser;
use serde::Serialize;
use taskloom_common::config::{parse_duration, serialize_duration};
use taskloom_common::CommonArgs;

use crate::l1::L1Config;

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
    }
}
