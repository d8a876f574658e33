//! `taskloom-cache`: reads config, wires the cache service, serves until SIGTERM/SIGINT.

use taskloom_cache::{config::Settings, service_spec};
use taskloom_common::{config, load_or_exit, logging, serve, Tracing};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings: Settings = load_or_exit();
    logging::init("cache", &settings.common.log_level)?;
    logging::log_config(&config::masked(&settings));
    let tracing = Tracing::start(&settings.common.tracing, "taskloom-cache")?;
    serve(service_spec(&settings)?, &settings.common, tracing).await
}
