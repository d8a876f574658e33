"""Scenario `cache`: the cache service against Redis, 50 concurrent callers each.

Redis is driven by `redis-benchmark`, the cache service (L1 hits, no L2) by
bench/loadgen-cache (a small Go gRPC generator). The generators differ, so the fair figure
is each server's own CPU time per operation, read from /proc/<pid>/stat before and after
the run. Rows: `server_cpu_us_per_get` and `get_ops_per_s` (peer redis-server GET),
`batch_get_keys_per_s` (16 keys per BatchGet; peer Redis GET pipelined 16 deep), and
`zipf_hit_ratio` (the cache's L1, services/cache-rust/examples/zipf_hit_ratio.rs, against
an LRU of equal capacity in entries, on one Zipf(0.99) trace drawn here). Needs
`make build-rust`, Go and redis-benchmark.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from run import Result

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "bin" / "taskloom-cache"
LOADGEN_DIR = ROOT / "bench" / "loadgen-cache"

CALLERS = 50
BATCH = 16
KEYS = 1000
VALUE_BYTES = 100
SECONDS = 5
REDIS_REQUESTS = 500_000  # per redis-benchmark run; about as long as SECONDS here
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
ZIPF_S = 0.99
ZIPF_KEYS = 100_000
ZIPF_CAPACITY = 2_000  # entries, for the L1 and the LRU alike
ZIPF_REQUESTS = 1_000_000


def run() -> list[Result]:
    if not CACHE.exists():
        raise RuntimeError(f"{CACHE} is missing: run `make build-rust` first")
    for program in ("redis-server", "redis-benchmark", "go"):
        if shutil.which(program) is None:
            raise RuntimeError(f"{program} is not on PATH (`make deps` installs Redis)")
    with tempfile.TemporaryDirectory(prefix="taskloom-bench-cache-") as tmp:
        loadgen = Path(tmp) / "loadgen-cache"
        subprocess.run(
            ["go", "build", "-o", str(loadgen), "."], cwd=LOADGEN_DIR, check=True, timeout=600
        )
        with _cache_server() as (cache_pid, cache_addr):
            get = _measure(cache_pid, lambda: _loadgen(loadgen, cache_addr, "get"))
            batch = _measure(cache_pid, lambda: _loadgen(loadgen, cache_addr, "batch-get"))
        with _redis_server(Path(tmp)) as (redis_pid, redis_port):
            redis_get = _measure(redis_pid, lambda: _redis_benchmark(redis_port, 1))
            redis_pipelined = _measure(redis_pid, lambda: _redis_benchmark(redis_port, BATCH))
    zipf = _zipf_hit_ratio()

    return [
        Result(
            "server_cpu_us_per_get",
            round(get.cpu_us_per_op, 2),
            "µs",
            "lower",
            peer="redis-server",
            peer_value=round(redis_get.cpu_us_per_op, 2),
        ),
        Result(
            "get_ops_per_s",
            round(get.ops_per_s),
            "ops/s",
            "higher",
            peer="redis-server",
            peer_value=round(redis_get.ops_per_s),
        ),
        Result(
            "batch_get_keys_per_s",
            round(batch.ops_per_s),
            "keys/s",
            "higher",
            peer=f"redis-server pipelined {BATCH}",
            peer_value=round(redis_pipelined.ops_per_s),
        ),
        Result(
            "server_cpu_us_per_batch_key",
            round(batch.cpu_us_per_op, 2),
            "µs",
            "lower",
            peer=f"redis-server pipelined {BATCH}",
            peer_value=round(redis_pipelined.cpu_us_per_op, 2),
        ),
        Result(
            "zipf_hit_ratio",
            round(zipf["l1_hit_ratio"], 4),
            "ratio",
            "higher",
            peer="lru",
            peer_value=round(zipf["lru_hit_ratio"], 4),
        ),
    ]


class Measured:
    def __init__(self, ops: float, seconds: float, cpu_seconds: float) -> None:
        self.ops_per_s = ops / seconds
        self.cpu_us_per_op = cpu_seconds * 1e6 / ops


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _measure(pid: int, drive: Callable[[], tuple[float, float]]) -> Measured:
    """Runs `drive` (which returns ops and seconds) and the server's CPU time meanwhile."""
    before = _cpu_seconds(pid)
    ops, seconds = drive()
    return Measured(ops, seconds, _cpu_seconds(pid) - before)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


@contextmanager
def _running(argv: list[str], port: int) -> Iterator[int]:
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_port(port, process)
        yield process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


@contextmanager
def _cache_server() -> Iterator[tuple[int, str]]:
    grpc, http = _free_port(), _free_port()
    argv = [str(CACHE), "--grpc-addr", f"127.0.0.1:{grpc}", "--http-addr", f"127.0.0.1:{http}"]
    with _running(argv, grpc) as pid:
        yield pid, f"127.0.0.1:{grpc}"


@contextmanager
def _redis_server(tmp: Path) -> Iterator[tuple[int, int]]:
    port = _free_port()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    argv += ["--appendonly", "no", "--dir", str(tmp)]
    with _running(argv, port) as pid:
        yield pid, port


def _loadgen(loadgen: Path, addr: str, mode: str) -> tuple[float, float]:
    argv = [str(loadgen), "--addr", addr, "--mode", mode, "--callers", str(CALLERS)]
    argv += ["--keys", str(KEYS), "--value-size", str(VALUE_BYTES), "--batch", str(BATCH)]
    argv += ["--duration", f"{SECONDS}s"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {proc.stderr.strip()}")
    report = json.loads(proc.stdout)
    print(f"cache {mode}: {report}", file=sys.stderr)
    return float(report["keys"]), float(report["seconds"])


def _redis_benchmark(port: int, pipeline: int) -> tuple[float, float]:
    """GETs of KEYS random keys of VALUE_BYTES (loaded first by a SET run)."""
    base = ["redis-benchmark", "-p", str(port), "-c", str(CALLERS), "-d", str(VALUE_BYTES)]
    base += ["-r", str(KEYS), "-q"]
    subprocess.run([*base, "-n", str(KEYS * 20), "-t", "set"], capture_output=True, check=True)
    argv = [*base, "-n", str(REDIS_REQUESTS), "-P", str(pipeline), "-t", "get"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=True)
    print(f"redis -P {pipeline}: {proc.stdout.strip()}", file=sys.stderr)
    # "GET: 98039.22 requests per second, p50=0.263 msec" (after progress lines ending in \r)
    match = re.search(r"GET: ([0-9.]+) requests per second", proc.stdout)
    if match is None:
        raise RuntimeError(f"unexpected redis-benchmark output: {proc.stdout!r}")
    return float(REDIS_REQUESTS), REDIS_REQUESTS / float(match.group(1))


def _zipf_hit_ratio() -> dict[str, float]:
    """The L1's and an LRU's hit ratio on one Zipf(ZIPF_S) trace, at ZIPF_CAPACITY entries."""
    rng = random.Random(42)
    weights = [1 / rank**ZIPF_S for rank in range(1, ZIPF_KEYS + 1)]
    # Shuffled ranks: popularity and key order do not line up.
    keys = list(range(ZIPF_KEYS))
    rng.shuffle(keys)
    trace = rng.choices(keys, weights=weights, k=ZIPF_REQUESTS)

    lru: OrderedDict[int, None] = OrderedDict()
    lru_hits = 0
    for key in trace:
        if key in lru:
            lru_hits += 1
            lru.move_to_end(key)
        else:
            lru[key] = None
            if len(lru) > ZIPF_CAPACITY:
                lru.popitem(last=False)

    argv = ["cargo", "run", "--release", "-q", "-p", "taskloom-cache"]
    argv += ["--example", "zipf_hit_ratio", "--", str(ZIPF_CAPACITY)]
    proc = subprocess.run(
        argv,
        cwd=ROOT,
        input="\n".join(map(str, trace)),
        capture_output=True,
        text=True,
        timeout=1800,
        check=True,
    )
    l1 = json.loads(proc.stdout)
    print(f"zipf: L1 {l1}, LRU {lru_hits / ZIPF_REQUESTS:.4f}", file=sys.stderr)
    return {"l1_hit_ratio": l1["hit_ratio"], "lru_hit_ratio": lru_hits / ZIPF_REQUESTS}
