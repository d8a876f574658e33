//! The vector service's settings: common flags plus where collections are stored.

use std::path::PathBuf;

use clap::Parser;
use serde::Serialize;
use taskloom_common::CommonArgs;

pub const DEFAULT_GRPC_ADDR: &str = "127.0.0.1:50054";
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:9104";

#[derive(Parser, Debug, Clone, Serialize)]
#[command(
    name = "taskloom-vector",
    version,
    about = "Taskloom vector memory service"
)]
pub struct Settings {
    #[command(flatten)]
    #[serde(flatten)]
    pub common: CommonArgs,

    /// Directory holding one file per collection; created if missing.
    #[arg(
        long,
        env = "TASKLOOM_VECTOR_DATA_DIR",
        default_value = "./.run/vector"
    )]
    pub data_dir: PathBuf,
}

impl Settings {
    pub fn parse_args() -> Self {
        taskloom_common::parse_config(DEFAULT_GRPC_ADDR, DEFAULT_HTTP_ADDR)
    }
}
