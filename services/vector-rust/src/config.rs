//! The vector service's settings (section `vector:` of the config file): common flags,
//! where collections are stored, search and durability knobs, and memory limits.

use std::path::PathBuf;

use clap::Parser;
use serde::{Deserialize, Serialize};
use taskloom_common::{CommonArgs, ServiceSettings};

use crate::collection::SearchTuning;
use crate::store::StoreOptions;

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

    /// Directory holding one directory per collection (log, snapshot); created if missing.
    #[arg(
        long,
        env = "TASKLOOM_VECTOR_DATA_DIR",
        default_value = "./.run/vector"
    )]
    pub data_dir: PathBuf,

    /// Collections with at most this many points are searched exactly.
    #[arg(long, env = "TASKLOOM_VECTOR_EXACT_BELOW", default_value_t = 1000)]
    pub exact_below: usize,

    /// Most points one collection may hold.
    #[arg(
        long,
        env = "TASKLOOM_VECTOR_MAX_POINTS_PER_COLLECTION",
        default_value_t = 10_000_000
    )]
    pub max_points_per_collection: usize,

    /// Most bytes (estimated: vectors, graph links, ids, payloads) all collections may hold.
    #[arg(long, env = "TASKLOOM_VECTOR_MAX_BYTES", default_value_t = 8 << 30)]
    pub max_bytes: usize,

    /// A collection is snapshotted, and its write-ahead log emptied, once the log passes
    /// this many bytes or an eighth of the collection's size, whichever is more.
    #[arg(long, env = "TASKLOOM_VECTOR_SNAPSHOT_WAL_BYTES", default_value_t = 8 << 20)]
    pub snapshot_wal_bytes: u64,

    /// Threads for parallel inserts, repairs and batch searches; 0 for one per core.
    #[arg(long, env = "TASKLOOM_VECTOR_THREADS", default_value_t = 0)]
    pub threads: usize,
}

impl ServiceSettings for Settings {
    const SECTION: &'static str = "vector";
    const DEFAULT_GRPC_ADDR: &'static str = DEFAULT_GRPC_ADDR;
    const DEFAULT_HTTP_ADDR: &'static str = DEFAULT_HTTP_ADDR;

    fn common(&self) -> &CommonArgs {
        &self.common
    }
}

impl Settings {
    pub fn store_options(&self) -> StoreOptions {
        let defaults = StoreOptions::default();
        StoreOptions {
            tuning: SearchTuning {
                exact_below: self.exact_below,
            },
            max_points_per_collection: self.max_points_per_collection,
            max_bytes: self.max_bytes,
            snapshot_wal_bytes: self.snapshot_wal_bytes,
            threads: if self.threads == 0 {
                defaults.threads
            } else {
                self.threads
            },
        }
    }
}
