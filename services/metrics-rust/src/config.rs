//! The metrics service's settings (section `metrics:` of the config file): common flags, the
//! series limits, expiry and summaries.

use std::time::Duration;

use clap::Parser;
use serde::{Deserialize, Serialize};
use taskloom_common::config::parse_duration;
use taskloom_common::{CommonArgs, ServiceSettings};

pub const DEFAULT_GRPC_ADDR: &str = "127.0.0.1:50053";
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:9103";

#[derive(Parser, Debug, Clone, Serialize, Deserialize)]
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
    #[serde(with = "humantime_serde")]
    pub series_ttl: Duration,

    /// Resolution of the per-agent summaries (SummarizeAgents): the shortest window.
    #[arg(long, env = "TASKLOOM_METRICS_SUMMARY_STEP", default_value = "10s", value_parser = parse_duration)]
    #[serde(with = "humantime_serde")]
    pub summary_step: Duration,

    /// How far back the per-agent summaries reach: the longest window.
    #[arg(long, env = "TASKLOOM_METRICS_SUMMARY_RETENTION", default_value = "1h", value_parser = parse_duration)]
    #[serde(with = "humantime_serde")]
    pub summary_retention: Duration,
}

impl ServiceSettings for Settings {
    const SECTION: &'static str = "metrics";
    const DEFAULT_GRPC_ADDR: &'static str = DEFAULT_GRPC_ADDR;
    const DEFAULT_HTTP_ADDR: &'static str = DEFAULT_HTTP_ADDR;

    fn common(&self) -> &CommonArgs {
        &self.common
    }

    /// Checks the settings that depend on each other (whatever layer set them).
    fn validate(&self) -> Result<(), String> {
        let second = Duration::from_secs(1);
        let checks = [
            (self.max_series > 0, "max_series: must be at least 1"),
            (
                self.max_series_per_metric > 0,
                "max_series_per_metric: must be at least 1",
            ),
            (self.series_ttl >= second, "series_ttl: must be at least 1s"),
            (
                self.summary_step >= second,
                "summary_step: must be at least 1s",
            ),
            (
                self.summary_retention >= self.summary_step,
                "summary_retention: must be at least summary_step",
            ),
        ];
        match checks.into_iter().find(|(ok, _)| !ok) {
            Some((_, message)) => Err(message.to_string()),
            None => Ok(()),
        }
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
            (&["--series-ttl", "10ms"][..], "series_ttl"),
            (
                &["--summary-step", "1m", "--summary-retention", "30s"],
                "summary_retention",
            ),
            (&["--max-series-per-metric", "0"], "max_series_per_metric"),
        ] {
            let err = parse(args).validate().expect_err("invalid");
            assert!(err.contains(message), "{err}");
        }
    }
}
