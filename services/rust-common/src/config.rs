//! Flags shared by every service (`--grpc-addr`, `--http-addr`, `--log-level` and their
//! `TASKLOOM_*` variables), flattened into each service's own clap config.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, CommandFactory, FromArgMatches};
use serde::{Serialize, Serializer};

#[derive(Args, Debug, Clone, Serialize)]
pub struct CommonArgs {
    /// Address the gRPC server listens on.
    #[arg(long, env = "TASKLOOM_GRPC_ADDR")]
    pub grpc_addr: SocketAddr,

    /// Address the HTTP server (/healthz, /readyz, /metrics) listens on.
    #[arg(long, env = "TASKLOOM_HTTP_ADDR")]
    pub http_addr: SocketAddr,

    /// Log filter: a level (`info`) or an `EnvFilter` directive (`info,h2=warn`).
    #[arg(long, env = "TASKLOOM_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
}

/// Parses a service's config from the command line and environment. Each service has its
/// own default ports, so they are set here rather than in `CommonArgs`.
pub fn parse_config<C: CommandFactory + FromArgMatches>(
    default_grpc_addr: &'static str,
    default_http_addr: &'static str,
) -> C {
    parse_config_from(std::env::args_os(), default_grpc_addr, default_http_addr)
        .unwrap_or_else(|e| e.exit())
}

/// Like [`parse_config`], from the given arguments (the first is the program name).
pub fn parse_config_from<C, I, T>(
    args: I,
    default_grpc_addr: &'static str,
    default_http_addr: &'static str,
) -> Result<C, clap::Error>
where
    C: CommandFactory + FromArgMatches,
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let mut matches = C::command()
        .mut_arg("grpc_addr", |a| {
            a.default_value(default_grpc_addr).required(false)
        })
        .mut_arg("http_addr", |a| {
            a.default_value(default_http_addr).required(false)
        })
        .try_get_matches_from(args)?;
    C::from_arg_matches_mut(&mut matches)
}

/// Serializes a duration the way it is written on the command line (`1h`, `250ms`).
pub fn serialize_duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_duration(*d))
}

/// Parses `1h`, `30s`, `250ms` etc. for clap.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct TestConfig {
        #[command(flatten)]
        common: CommonArgs,
    }

    #[test]
    fn per_service_defaults_and_flags() {
        let c: TestConfig =
            parse_config_from(["x"], "127.0.0.1:1", "127.0.0.1:2").expect("defaults parse");
        assert_eq!(c.common.grpc_addr.port(), 1);
        assert_eq!(c.common.http_addr.port(), 2);
        let c: TestConfig = parse_config_from(
            ["x", "--grpc-addr", "0.0.0.0:7", "--log-level", "debug"],
            "127.0.0.1:1",
            "127.0.0.1:2",
        )
        .expect("flags parse");
        assert_eq!(c.common.grpc_addr.port(), 7);
        assert_eq!(c.common.log_level, "debug");
    }
}
