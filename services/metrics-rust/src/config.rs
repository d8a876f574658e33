//! The metrics service's settings (section `metrics:` of the config file): common flags
//! plus the series bound.

use clap::Parser;
use serde::{Deserialize, Serialize};
use taskloom_common::{CommonArgs, ServiceSettings};

pub const DEFAULT_GRPC_ADDR: &str = "127.0.0.1:50053";
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:9103";

#[derive(Parser, Debug, Clone, Serialize, Deserialize)]
#[command(name = "taskloom-metrics", version, about = "Taskloom metrics service")]
pub struct Settings {
    #[command(flatten)]
    #[serde(flatten)]
    pub common: CommonArgs,

    /// Most series held in memory; samples that would create more are rejected.
    #[arg(long, env = "TASKLOOM_METRICS_MAX_SERIES", default_value_t = 100_000)]
    pub max_series: usize,
}

impl ServiceSettings for Settings {
    const SECTION: &'static str = "metrics";
    const DEFAULT_GRPC_ADDR: &'static str = DEFAULT_GRPC_ADDR;
    const DEFAULT_HTTP_ADDR: &'static str = DEFAULT_HTTP_ADDR;

    fn common(&self) -> &CommonArgs {
        &self.common
    }
}
