//! What every Taskloom Rust service shares, written once: the common flags, JSON logs,
//! gRPC error statuses with `google.rpc` details, and the gRPC + HTTP serving loop.

pub mod config;
pub mod errors;
pub mod logging;
pub mod serve;
pub mod testing;

pub use config::{parse_config, CommonArgs};
pub use errors::{error_status, invalid_argument};
pub use serve::{always_ready, serve, serve_on, Exposition, NotReady, Readiness, ServiceSpec};
