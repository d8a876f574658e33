//! `taskloom-cache`: reads config, wires the cache service, serves until SIGTERM/SIGINT.

use taskloom_cache::{config::Settings, service_spec};
use taskloom_common::{logging, serve};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::parse_args();
    logging::init("cache", &settings.common.log_level)?;
    logging::log_config(&settings);
    serve(
        service_spec(&settings)?,
        settings.common.grpc_addr,
        settings.common.http_addr,
    )
    .await
}
