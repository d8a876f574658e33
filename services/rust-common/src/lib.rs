//! What every Taskloom Rust service shares, written once: layered configuration, JSON logs,
//! gRPC error statuses with `google.rpc` details, the gRPC + HTTP serving loop and its
//! opt-in profiling endpoints and OpenTelemetry tracing.

pub mod config;
pub mod errors;
pub mod logging;
pub mod otel;
pub mod profiling;
pub mod secrets;
pub mod serve;
pub mod testing;

pub use config::{load_or_exit, CommonArgs, ServiceSettings};
pub use errors::{error_status, invalid_argument};
pub use otel::Tracing;
pub use serve::{always_ready, serve, serve_on, Exposition, NotReady, Readiness, ServiceSpec};

/// jemalloc for every service: faster than the system allocator under many small
/// allocations, and it samples the heap for `/debug/pprof/heap` ([`profiling`]).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
