"""Scenario `metrics`: the Rust metrics service and the Python metrics client.

- `ingest_samples_per_s`: `taskloom-metrics-loadgen` (Rust, in the metrics crate) streams
  pre-encoded `IngestStream` batches of 1,000 samples over 1,000 series with 3 labels each
  (a third each counters, gauges and histogram observations) on 2 connections to a fresh
  service; the median of 3 runs, with the service's CPU per sample read from /proc.
- `client_inc_ns`, `client_observe_ns`, `client_labels_inc_ns`: the SDK client's record
  calls against `prometheus_client`'s same calls (same buckets), timed alternately in this
  process with `timeit`; the best of several rounds each.
- `client_flush_10k_series_ms`: one flush of 10,000 changed series to the service (the time
  the flushing thread holds the GIL and the wire).
- `render_100k_series_ms`: GET /metrics of a service holding 100,000 series (a third each
  counters, gauges, histograms with 11 buckets), Prometheus text; the median of 5 scrapes,
  measured by the loadgen over loopback (render and transfer, as a scraper sees it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry
from prometheus_client import Counter as PromCounter
from prometheus_client import Histogram as PromHistogram
from run import Result

from taskloom.sdk.localstack import free_port
from taskloom.sdk.metrics import DEFAULT_BUCKETS, MetricsClient

ROOT = Path(__file__).resolve().parents[2]
SERVICE = ROOT / "bin" / "taskloom-metrics"
LOADGEN = ROOT / "target" / "release" / "taskloom-metrics-loadgen"

INGEST_BATCHES = 6000  # 6,000,000 samples per run
INGEST_RUNS = 3
RENDER_SERIES = 100_000
CLIENT_CALLS = 200_000
CLIENT_ROUNDS = 7
# Issue #14: the client's record calls cost no more than prometheus_client's.
NO_SLOWER = "ratio <= 1.0"


def run() -> list[Result]:
    if not SERVICE.exists():
        raise RuntimeError(f"{SERVICE} is missing: run `make build` first")
    subprocess.run(
        ["cargo", "build", "--release", "-q", "-p", "taskloom-metrics", "--bin", LOADGEN.name],
        cwd=ROOT,
        check=True,
    )
    print(f"metrics: load average before: {os.getloadavg()}", file=sys.stderr)
    ingest = [_ingest_run() for _ in range(INGEST_RUNS)]
    ingest.sort(key=lambda r: r["samples_per_s"])
    median = ingest[len(ingest) // 2]
    client = _client_calls()
    flush_ms = _flush_10k()
    render = _render()
    print(f"metrics: load average after: {os.getloadavg()}", file=sys.stderr)
    peer = "prometheus_client"
    return [
        Result(
            "ingest_samples_per_s",
            round(median["samples_per_s"]),
            "samples/s",
            "higher",
            goal="value >= 2000000",
        ),
        Result(
            "ingest_server_cpu_ns_per_sample",
            round(median["server_cpu_ns_per_sample"], 1),
            "ns",
            "lower",
        ),
        Result("client_inc_ns", client["inc"][0], "ns", "lower", peer, client["inc"][1], NO_SLOWER),
        Result(
            "client_observe_ns",
            client["observe"][0],
            "ns",
            "lower",
            peer,
            client["observe"][1],
            NO_SLOWER,
        ),
        Result(
            "client_labels_inc_ns",
            client["labels"][0],
            "ns",
            "lower",
            peer,
            client["labels"][1],
            NO_SLOWER,
        ),
        Result("client_flush_10k_series_ms", flush_ms, "ms", "lower"),
        Result("render_100k_series_ms", render["text"], "ms", "lower", goal="value <= 250"),
        Result("render_100k_series_openmetrics_ms", render["openmetrics"], "ms", "lower"),
    ]


@contextmanager
def _service(*flags: str) -> Iterator[tuple[str, str, int]]:
    """A fresh metrics service: (gRPC address, HTTP address, pid)."""
    grpc_addr, http_addr = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [str(SERVICE), "--grpc-addr", grpc_addr, "--http-addr", http_addr, *flags],
            stdout=log,
            stderr=log,
            env={**os.environ, "TASKLOOM_LOG_LEVEL": "warn"},
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"http://{http_addr}/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or process.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(f"metrics service did not start: {log.read()[-2000:]!r}")
                time.sleep(0.05)
            yield grpc_addr, http_addr, process.pid
        finally:
            process.terminate()
            process.wait(10)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _loadgen(*args: str) -> dict[str, float]:
    out = subprocess.run([str(LOADGEN), *args], capture_output=True, text=True, check=True)
    result: dict[str, float] = json.loads(out.stdout)
    return result


def _ingest_run() -> dict[str, float]:
    with _service() as (grpc_addr, _, pid):
        cpu_before = _cpu_seconds(pid)
        report = _loadgen(
            "ingest",
            "--addr",
            grpc_addr,
            "--series",
            "1000",
            "--batch",
            "1000",
            "--batches",
            str(INGEST_BATCHES),
            "--streams",
            "2",
        )
        cpu = _cpu_seconds(pid) - cpu_before
    if report["accepted"] != report["samples"]:
        raise RuntimeError(f"ingest lost samples: {report}")
    # The loadgen first sends one round to create the series: count its samples too.
    samples = report["samples"] + 1000
    report["server_cpu_ns_per_sample"] = cpu / samples * 1e9
    print(f"metrics: ingest {report}", file=sys.stderr)
    return report


def _ns_per_call(stmt: str, subject: object) -> float:
    """`stmt` run inline in timeit's loop (no extra call per iteration) on `m`."""
    seconds = timeit.timeit(stmt, number=CLIENT_CALLS, globals={"m": subject})
    return seconds / CLIENT_CALLS * 1e9


def _client_calls() -> dict[str, tuple[float, float]]:
    """(ours, prometheus_client's) ns per call, each the best of alternating rounds."""
    ours = MetricsClient("")  # recording does not depend on sending
    registry = CollectorRegistry()
    c, pc = ours.counter("bench_c_total"), PromCounter("bench_c", "c", registry=registry)
    h = ours.histogram("bench_h_seconds", buckets=DEFAULT_BUCKETS)
    ph = PromHistogram("bench_h_seconds", "h", buckets=DEFAULT_BUCKETS, registry=registry)
    lc = ours.counter("bench_l_total", labelnames=("a", "b"))
    plc = PromCounter("bench_l", "l", ["a", "b"], registry=registry)
    pairs = {
        "inc": ("m.inc()", (c, pc)),
        "observe": ("m.observe(0.2)", (h, ph)),
        "labels": ('m.labels("x", "y").inc()', (lc, plc)),
    }
    best: dict[str, list[float]] = {name: [float("inf"), float("inf")] for name in pairs}
    for _ in range(CLIENT_ROUNDS):
        for name, (stmt, subjects) in pairs.items():
            for side, subject in enumerate(subjects):
                best[name][side] = min(best[name][side], _ns_per_call(stmt, subject))
    return {name: (round(a, 1), round(b, 1)) for name, (a, b) in best.items()}


def _flush_10k() -> float:
    with _service() as (grpc_addr, _, _):
        client = MetricsClient(grpc_addr, timeout_s=30)
        family = client.counter("bench_flush_total", labelnames=("a", "b", "c"))
        children = [
            family.labels(str(i % 10), str(i // 10 % 10), str(i // 100)) for i in range(10_000)
        ]
        times = []
        for _ in range(5):
            for child in children:
                child.inc()
            started = time.perf_counter()
            result = client.flush()
            times.append((time.perf_counter() - started) * 1000)
            if result.accepted != 10_000:
                raise RuntimeError(f"flush lost samples: {result}")
        client.close()
    times.sort()
    return round(times[len(times) // 2], 1)


def _render() -> dict[str, float]:
    flags = ("--max-series", str(2 * RENDER_SERIES), "--max-series-per-metric", str(RENDER_SERIES))
    with _service(*flags) as (grpc_addr, http_addr, _):
        populated = _loadgen("populate", "--addr", grpc_addr, "--series", str(RENDER_SERIES))
        if populated["accepted"] != RENDER_SERIES:
            raise RuntimeError(f"populate: {populated}")
        text = _loadgen("scrape", "--http-addr", http_addr, "--times", "5")
        om = _loadgen("scrape", "--http-addr", http_addr, "--times", "5", "--openmetrics")
    print(f"metrics: render text {text} openmetrics {om}", file=sys.stderr)
    return {"text": round(text["median_ms"], 1), "openmetrics": round(om["median_ms"], 1)}
