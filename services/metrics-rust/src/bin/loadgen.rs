//! `taskloom-metrics-loadgen`: the native load generator of the `metrics` bench scenario.
//!
//! `ingest` streams pre-encoded `IngestStreamRequest`s (so the figure is the service's, not
//! the client's encoding) over `IngestStream` on several connections; `populate` creates a
//! given number of distinct series; `scrape` times `GET /metrics`. Each prints one JSON line.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes};
use clap::{Args, Parser, Subcommand};
use prost::Message;
use taskloom_proto::v1::{
    HistogramData, IngestStreamRequest, IngestStreamResponse, MetricKind, MetricSample,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint};
use tonic::Status;

#[derive(Parser)]
#[command(about = "Load generator for the Taskloom metrics service")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Stream batches over IngestStream and report samples per second.
    Ingest(IngestArgs),
    /// Create distinct series (e.g. before timing a scrape).
    Populate(PopulateArgs),
    /// Time GET /metrics.
    Scrape(ScrapeArgs),
}

#[derive(Args)]
struct IngestArgs {
    /// gRPC address of the metrics service, e.g. 127.0.0.1:50053.
    #[arg(long)]
    addr: String,
    /// Distinct series, each with three labels.
    #[arg(long, default_value_t = 1000)]
    series: usize,
    /// Samples per batch (one IngestStream message).
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Batches to send in all.
    #[arg(long, default_value_t = 4000)]
    batches: usize,
    /// Concurrent streams, each on its own connection.
    #[arg(long, default_value_t = 2)]
    streams: usize,
}

#[derive(Args)]
struct PopulateArgs {
    #[arg(long)]
    addr: String,
    /// Distinct series to create.
    #[arg(long, default_value_t = 100_000)]
    series: usize,
    /// Metrics the series are spread over.
    #[arg(long, default_value_t = 100)]
    metrics: usize,
}

#[derive(Args)]
struct ScrapeArgs {
    /// HTTP address of the metrics service, e.g. 127.0.0.1:9103.
    #[arg(long)]
    http_addr: String,
    /// Scrapes to time.
    #[arg(long, default_value_t = 5)]
    times: usize,
    /// Ask for OpenMetrics instead of the Prometheus text format.
    #[arg(long)]
    openmetrics: bool,
}

/// Sends requests that are already encoded; decodes the response with prost.
#[derive(Default)]
struct PreEncoded;

struct RawEncoder;

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

struct ResponseDecoder;

impl Decoder for ResponseDecoder {
    type Item = IngestStreamResponse;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Status> {
        IngestStreamResponse::decode(src)
            .map(Some)
            .map_err(|e| Status::internal(e.to_string()))
    }
}

impl Codec for PreEncoded {
    type Encode = Bytes;
    type Decode = IngestStreamResponse;
    type Encoder = RawEncoder;
    type Decoder = ResponseDecoder;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> ResponseDecoder {
        ResponseDecoder
    }
}

const KINDS: [MetricKind; 3] = [
    MetricKind::Counter,
    MetricKind::Gauge,
    MetricKind::Histogram,
];

/// Series `i` of `metrics` metrics: the metric cycles through the three kinds; three labels.
fn series_sample(i: usize, metrics: usize, value: f64) -> MetricSample {
    let metric = i % metrics;
    let kind = KINDS[metric % 3];
    let name = match kind {
        MetricKind::Counter => format!("bench_requests_{metric}_total"),
        MetricKind::Gauge => format!("bench_queue_depth_{metric}"),
        _ => format!("bench_latency_{metric}_seconds"),
    };
    let n = i / metrics;
    MetricSample {
        name,
        kind: kind.into(),
        value,
        labels: HashMap::from([
            ("agent".to_string(), format!("agent-{}", n % 100)),
            ("model".to_string(), format!("model-{}", (n / 100) % 10)),
            ("instance".to_string(), format!("worker-{}", n / 1000)),
        ]),
        help: String::new(),
        histogram: None::<HistogramData>,
        exemplars: Vec::new(),
    }
}

/// A batch of `batch` samples starting at series `first`, encoded.
fn encoded_batch(first: usize, batch: usize, series: usize, metrics: usize, round: usize) -> Bytes {
    let samples = (0..batch)
        .map(|k| {
            let value = ((round * 7 + k) % 1000) as f64 / 1000.0;
            series_sample((first + k) % series, metrics, value)
        })
        .collect();
    IngestStreamRequest { samples }.encode_to_vec().into()
}

async fn connect(addr: &str) -> anyhow::Result<Channel> {
    Ok(Endpoint::from_shared(format!("http://{addr}"))?
        .tcp_nodelay(true)
        .initial_stream_window_size(Some(4 << 20))
        .initial_connection_window_size(Some(8 << 20))
        .connect()
        .await?)
}

async fn stream(channel: Channel, batches: Vec<Bytes>) -> anyhow::Result<IngestStreamResponse> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await?;
    let path = PathAndQuery::from_static("/taskloom.v1.MetricsService/IngestStream");
    let response = grpc
        .client_streaming(
            tonic::Request::new(tokio_stream::iter(batches)),
            path,
            PreEncoded,
        )
        .await?;
    Ok(response.into_inner())
}

/// Sends `batches` (cycled) over `streams` connections at once; returns totals and time.
async fn send(
    addr: &str,
    batches: &[Bytes],
    count: usize,
    streams: usize,
) -> anyhow::Result<(IngestStreamResponse, Duration)> {
    let mut channels = Vec::new();
    for _ in 0..streams {
        channels.push(connect(addr).await?);
    }
    let started = Instant::now();
    let tasks: Vec<_> = channels
        .into_iter()
        .enumerate()
        .map(|(s, channel)| {
            let mine: Vec<Bytes> = batches
                .iter()
                .cycle()
                .skip(s)
                .step_by(streams)
                .take(count / streams + usize::from(s < count % streams))
                .cloned()
                .collect();
            tokio::spawn(stream(channel, mine))
        })
        .collect();
    let mut totals = IngestStreamResponse::default();
    for task in tasks {
        let response = task.await??;
        totals.accepted += response.accepted;
        totals.rejected += response.rejected;
    }
    Ok((totals, started.elapsed()))
}

async fn ingest(args: IngestArgs) -> anyhow::Result<serde_json::Value> {
    // Enough distinct batches that every series is covered, with varied values.
    let per_round = args.series.div_ceil(args.batch);
    let batches: Vec<Bytes> = (0..per_round * 4)
        .map(|b| {
            let round = b / per_round;
            encoded_batch(
                (b % per_round) * args.batch,
                args.batch,
                args.series,
                10,
                round,
            )
        })
        .collect();
    // Create the series first, so the timed run measures steady-state ingestion.
    send(&args.addr, &batches[..per_round], per_round, 1).await?;
    let (totals, elapsed) = send(&args.addr, &batches, args.batches, args.streams).await?;
    let samples = (args.batches * args.batch) as f64;
    Ok(serde_json::json!({
        "samples": samples,
        "seconds": elapsed.as_secs_f64(),
        "samples_per_s": samples / elapsed.as_secs_f64(),
        "accepted": totals.accepted,
        "rejected": totals.rejected,
        "batch_bytes": batches[0].len(),
    }))
}

async fn populate(args: PopulateArgs) -> anyhow::Result<serde_json::Value> {
    let batch = 1000;
    let batches: Vec<Bytes> = (0..args.series.div_ceil(batch))
        .map(|b| {
            let size = batch.min(args.series - b * batch);
            encoded_batch(b * batch, size, args.series, args.metrics, 0)
        })
        .collect();
    let (totals, elapsed) = send(&args.addr, &batches, batches.len(), 1).await?;
    Ok(serde_json::json!({
        "accepted": totals.accepted,
        "rejected": totals.rejected,
        "seconds": elapsed.as_secs_f64(),
    }))
}

async fn get_metrics(addr: &str, accept: &str) -> anyhow::Result<(Duration, usize)> {
    let started = Instant::now();
    let mut socket = tokio::net::TcpStream::connect(addr).await?;
    socket.set_nodelay(true)?;
    let request = format!(
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
    );
    socket.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    socket.read_to_end(&mut response).await?;
    let elapsed = started.elapsed();
    anyhow::ensure!(
        response.starts_with(b"HTTP/1.1 200"),
        "scrape failed: {}",
        String::from_utf8_lossy(&response[..response.len().min(200)])
    );
    Ok((elapsed, response.len()))
}

async fn scrape(args: ScrapeArgs) -> anyhow::Result<serde_json::Value> {
    let accept = if args.openmetrics {
        "application/openmetrics-text; version=1.0.0"
    } else {
        "text/plain; version=0.0.4"
    };
    let mut times_ms = Vec::new();
    let mut bytes = 0;
    for _ in 0..args.times {
        let (elapsed, len) = get_metrics(&args.http_addr, accept).await?;
        times_ms.push(elapsed.as_secs_f64() * 1000.0);
        bytes = len;
    }
    let mut sorted = times_ms.clone();
    sorted.sort_by(f64::total_cmp);
    Ok(serde_json::json!({
        "ms": times_ms,
        "median_ms": sorted[sorted.len() / 2],
        "bytes": bytes,
    }))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let report = match Cli::parse().command {
        Command::Ingest(args) => ingest(args).await?,
        Command::Populate(args) => populate(args).await?,
        Command::Scrape(args) => scrape(args).await?,
    };
    println!("{report}");
    Ok(())
}
