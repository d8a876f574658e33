//! `taskloom-cache`: reads config, wires the cache service, serves until SIGTERM/SIGINT.

use taskloom_cache::{config::Settings, service_spec};
use taskloom_common::{config, load_or_exit, logging, serve};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings: Settings = load_or_exit();
    logging::init("cache", &settings.common.log_level)?;
    logging::log_config(&config::masked(&settings));
    serve(service_spec(&settings)?, &settings.common).await
}
