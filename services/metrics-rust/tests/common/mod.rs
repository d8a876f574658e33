//! Shared by the black-box tests: a server on loopback ports, sample builders, and an
//! HTTP GET that sends an `Accept` header.

#![allow(dead_code)] // each test file uses a different part

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use taskloom_common::config::parse_config_from;
use taskloom_common::testing::{http_get_with, TestServer};
use taskloom_metrics::config::{Settings, DEFAULT_GRPC_ADDR, DEFAULT_HTTP_ADDR};
use taskloom_metrics::service_spec;
use taskloom_proto::v1::{MetricKind, MetricSample};

/// The metrics service with these extra flags, on ports the system chooses.
pub async fn start(flags: &[&str]) -> anyhow::Result<TestServer> {
    let args = [
        "taskloom-metrics",
        "--grpc-addr",
        "127.0.0.1:0",
        "--http-addr",
        "127.0.0.1:0",
    ]
    .into_iter()
    .chain(flags.iter().copied());
    let settings: Settings = parse_config_from(args, DEFAULT_GRPC_ADDR, DEFAULT_HTTP_ADDR)?;
    TestServer::start(service_spec(&settings)?).await
}

fn sample(name: &str, kind: MetricKind, value: f64, labels: &[(&str, &str)]) -> MetricSample {
    MetricSample {
        name: name.into(),
        kind: kind.into(),
        value,
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<HashMap<_, _>>(),
        ..MetricSample::default()
    }
}

pub fn counter(name: &str, value: f64, labels: &[(&str, &str)]) -> MetricSample {
    sample(name, MetricKind::Counter, value, labels)
}

pub fn gauge(name: &str, value: f64, labels: &[(&str, &str)]) -> MetricSample {
    sample(name, MetricKind::Gauge, value, labels)
}

/// GETs `path` with an `Accept` header: the status, the `content-type` and the body.
pub async fn http_get_accept(
    addr: SocketAddr,
    path: &str,
    accept: &str,
) -> anyhow::Result<(u16, String, String)> {
    let response = http_get_with(addr, path, &[("Accept", accept)]).await?;
    let content_type = response.header("content-type").unwrap_or("").to_string();
    Ok((
        response.status,
        content_type,
        String::from_utf8(response.body)?,
    ))
}

/// Polls `probe` until it returns a value, failing after `limit`.
pub async fn wait_for<T, F, Fut>(limit: Duration, probe: F) -> anyhow::Result<T>
where
    F: Fn() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = probe().await? {
            return Ok(value);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "condition not met within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
