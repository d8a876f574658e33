//! `taskloom-vector`: reads config, opens the store, serves until SIGTERM/SIGINT.

use taskloom_common::{logging, serve};
use taskloom_vector::{config::Settings, service_spec};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::parse_args();
    logging::init("vector", &settings.common.log_level)?;
    logging::log_config(&settings);
    serve(
        service_spec(&settings)?,
        settings.common.grpc_addr,
        settings.common.http_addr,
    )
    .await
}
