//! `taskloom-vector`: reads config, opens the store, serves until SIGTERM/SIGINT.

use taskloom_common::{config, load_or_exit, logging, serve, Tracing};
use taskloom_vector::{config::Settings, service_spec};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings: Settings = load_or_exit();
    logging::init("vector", &settings.common.log_level)?;
    logging::log_config(&config::masked(&settings));
    let tracing = Tracing::start(&settings.common.tracing, "taskloom-vector")?;
    serve(service_spec(&settings)?, &settings.common, tracing).await
}
