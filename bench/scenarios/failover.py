"""Scenario `failover`: two orchestrators on one Redis, a leader and a standby (README, "High
availability"), with QUEUED_TASKS tasks in the store. How long after the leader stops does
the standby lead and serve (its /readyz answers 200)?

- after SIGKILL: the dead leader's lease must expire first, so this is bounded by
  `--leader-lease-ttl` (5s) plus `--leader-renew-interval` (1s) plus loading the state;
- after SIGTERM: the leader drains and hands its lease on.

The median of RUNS runs each, with the default settings; no peer. Needs `make build-go`
(make bench builds first) and redis-server on PATH.
"""

from __future__ import annotations

import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import httpx
from run import Result

ROOT = Path(__file__).resolve().parents[2]
ORCHESTRATOR = ROOT / "bin" / "taskloom-orchestrator"
LOADGEN = ROOT / "bin" / "taskloom-loadgen"
RUNS = 3
QUEUED_TASKS = 10_000


def run() -> list[Result]:
    redis = shutil.which("redis-server")
    for needed in (ORCHESTRATOR, LOADGEN):
        if not needed.exists():
            raise RuntimeError(f"{needed} is missing: run `make build-go` first")
    if redis is None:
        raise RuntimeError("redis-server is not on PATH: run `make deps`")
    after_kill = [_failover(redis, signal.SIGKILL) for _ in range(RUNS)]
    after_term = [_failover(redis, signal.SIGTERM) for _ in range(RUNS)]
    return [
        Result(
            "failover_after_kill_seconds", round(statistics.median(after_kill), 2), "s", "lower"
        ),
        Result(
            "failover_after_sigterm_seconds", round(statistics.median(after_term), 2), "s", "lower"
        ),
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ready(http_port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{http_port}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _wait(what: str, condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"failover: {what} within {timeout}s")
        time.sleep(0.01)


def _failover(redis: str, stop: signal.Signals) -> float:
    """Seconds from stopping the leader (with `stop`) to the standby's first ready /readyz."""
    with (
        tempfile.TemporaryDirectory(prefix="taskloom-failover-") as tmp,
        open(Path(tmp) / "failover.log", "wb") as log,
    ):
        redis_port = _free_port()
        url = f"redis://127.0.0.1:{redis_port}/0"
        procs: list[subprocess.Popen[bytes]] = []
        try:
            argv = [redis, "--port", str(redis_port), "--bind", "127.0.0.1", "--dir", tmp]
            argv += ["--save", "", "--appendonly", "yes", "--appendfsync", "always"]
            procs.append(subprocess.Popen(argv, stdout=log, stderr=log))
            leader, leader_grpc, leader_http = _orchestrator(url, Path(tmp) / "a", log)
            procs.append(leader)
            _wait("the first orchestrator leads", lambda: _ready(leader_http))
            standby, _, standby_http = _orchestrator(url, Path(tmp) / "b", log)
            procs.append(standby)
            fill = [str(LOADGEN), "--mode", "queued", "--addr", f"127.0.0.1:{leader_grpc}"]
            fill += ["--tasks", str(QUEUED_TASKS)]
            subprocess.run(fill, stdout=log, stderr=log, check=True)
            start = time.monotonic()
            leader.send_signal(stop)
            _wait("the standby leads", lambda: _ready(standby_http))
            return time.monotonic() - start
        finally:
            for proc in reversed(procs):
                proc.kill()
                proc.wait()


def _orchestrator(url: str, data: Path, log: IO[bytes]) -> tuple[subprocess.Popen[bytes], int, int]:
    """An orchestrator on the Redis at url: its process, gRPC and HTTP ports."""
    grpc, http = _free_port(), _free_port()
    argv = [str(ORCHESTRATOR), "--store", "redis", "--redis-url", url, "--data-dir", str(data)]
    argv += ["--grpc-addr", f"127.0.0.1:{grpc}", "--http-addr", f"127.0.0.1:{http}"]
    argv += ["--log-level", "warn"]
    return subprocess.Popen(argv, stdout=log, stderr=log), grpc, http
