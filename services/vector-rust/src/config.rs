//! The vector service's settings (section `vector:` of the config file): common flags plus
//! where collections are stored.

use std::path::PathBuf;

use clap::Parser;
use serde::{Deserialize, Serialize};
use taskloom_common::{CommonArgs, ServiceSettings};

pub const DEFAULT_GRPC_ADDR: &str = "127.0.0.1:50054";
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:9104";

#[derive(Parser, Debug, Clone, Serialize, Deserialize)]
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

impl ServiceSettings for Settings {
    const SECTION: &'static str = "vector";
    const DEFAULT_GRPC_ADDR: &'static str = DEFAULT_GRPC_ADDR;
    const DEFAULT_HTTP_ADDR: &'static str = DEFAULT_HTTP_ADDR;

    fn common(&self) -> &CommonArgs {
        &self.common
    }
}
