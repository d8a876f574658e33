//! The metrics service's settings: common flags, the series limits, expiry and summaries.

use std::time::Duration;

use clap::Parser;
use serde::Serialize;
use taskloom_common::config::{parse_duration, serialize_duration};
use taskloom_common::CommonArgs;

pub const DEFAULT_GRPC_ADDR: &str = "127.0.0.1:50053";
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:9103";

#[derive(Parser, Debug, Clone, Serialize)]
#[command(name = "taskloom-metrics", version, about = "Taskloom metrics service")]
pub struct Settings {
    #[command(flatten)]
    #[serde(flatten)]
    pub common: CommonArgs,

    /// Most series held in memory; samples that would create more are dropped and counted.
    #[arg(long, env = "TASKLOOM_METRICS_MAX_SERIES", default_value_t = 100_000)]
    pub max_series: usize,

    /// Most series of one metric (label cardinality); samples beyond are dropped and counted.
    #[arg(
        long,
        env = "TASKLOOM_METRICS_MAX_SERIES_PER_METRIC",
        default_value_t = 10_000
    )]
    pub max_series_per_metric: usize,

    /// A series without a sample for this long is removed.
    #[arg(long, env = "TASKLOOM_METRICS_SERIES_TTL", default_value = "5m", value_parser = parse_duration)]
    #[serde(serialize_with = "serialize_duration")]
    pub series_ttl: Duration,

    /// Resolution of the per-agent summaries (SummarizeAgents): the shortest window.
    #[arg(long, env = "TASKLOOM_METRICS_SUMMARY_STEP", default_value = "10s", value_parser = parse_duration)]
    #[serde(serialize_with = "serialize_duration")]
    pub summary_step: Duration,

    /// How far back the per-agent summaries reach: the longest window.
    #[arg(long, env = "TASKLOOM_METRICS_SUMMARY_RETENTION", default_value = "1h", value_parser = parse_duration)]
    #[serde(serialize_with = "serialize_duration")]
    pub summary_retention: Duration,
}

impl Settings {
    pub fn parse_args() -> Self {
        taskloom_common::parse_config(DEFAULT_GRPC_ADDR, DEFAULT_HTTP_ADDR)
    }

    /// Checks the settings that depend on each other.
    pub fn validate(&self) -> anyhow::Result<()> {
        let second = Duration::from_secs(1);
        anyhow::ensure!(self.max_series > 0, "--max-series must be at least 1");
        anyhow::ensure!(
            self.max_series_per_metric > 0,
            "--max-series-per-metric must be at least 1"
        );
        anyhow::ensure!(
            self.series_ttl >= second,
            "--series-ttl must be at least 1s"
        );
        anyhow::ensure!(
            self.summary_step >= second,
            "--summary-step must be at least 1s"
        );
        anyhow::ensure!(
            self.summary_retention >= self.summary_step,
            "--summary-retention must be at least --summary-step"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use taskloom_common::config::parse_config_from;

    fn parse(args: &[&str]) -> Settings {
        let args = std::iter::once("taskloom-metrics").chain(args.iter().copied());
        parse_config_from(args, DEFAULT_GRPC_ADDR, DEFAULT_HTTP_ADDR).expect("parses")
    }

    #[test]
    fn defaults_are_valid_and_bad_combinations_are_named() {
        let defaults = parse(&[]);
        defaults.validate().expect("defaults");
        assert_eq!(defaults.series_ttl, Duration::from_secs(300));
        for (args, message) in [
            (&["--series-ttl", "10ms"][..], "--series-ttl"),
            (
                &["--summary-step", "1m", "--summary-retention", "30s"],
                "--summary-retention",
            ),
            (&["--max-series-per-metric", "0"], "--max-series-per-metric"),
        ] {
            let err = parse(args).validate().expect_err("invalid");
            assert!(err.to_string().contains(message), "{err}");
        }
    }
}
