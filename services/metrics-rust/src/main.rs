//! `taskloom-metrics`: reads config, wires the metrics service, serves until SIGTERM/SIGINT.

use taskloom_common::{logging, serve};
use taskloom_metrics::{config::Settings, service_spec};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::parse_args();
    logging::init("metrics", &settings.common.log_level)?;
    logging::log_config(&settings);
    settings.validate()?;
    serve(
        service_spec(&settings)?,
        settings.common.grpc_addr,
        settings.common.http_addr,
    )
    .await
}
