"""The `celery+redis` peer: Celery workers on a Redis broker and result backend, both
started here (redis-server from PATH on a free loopback port, Celery from its own
environment), driven by bench/peers/celery_app.py. A peer that cannot run raises
PeerError: its figures are part of the scenario, never silently missing."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from peers import env
from peers.process import PeerError, free_port, stop, wait_port

HERE = Path(__file__).resolve().parent


@contextlib.contextmanager
def celery(pool: str, concurrency: int) -> Iterator[tuple[Path, dict[str, str]]]:
    """Redis and one Celery worker (pool, concurrency) running; yields the python and
    the environment of a client."""
    redis = shutil.which("redis-server")
    if redis is None:
        raise PeerError("redis-server is not on PATH (make deps installs it)")
    python = env.python("celery")
    with tempfile.TemporaryDirectory(prefix="bench-celery-") as tmp:
        log = open(Path(tmp) / "peer.log", "wb")  # noqa: SIM115  (closed below)
        port = free_port()
        client_env = {**os.environ, "BENCH_REDIS_URL": f"redis://127.0.0.1:{port}/0"}
        procs: list[subprocess.Popen[bytes]] = []
        try:
            redis_cmd = [redis, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
            redis_cmd += ["--appendonly", "no", "--dir", tmp]
            procs.append(subprocess.Popen(redis_cmd, stdout=log, stderr=log))
            wait_port(port)
            worker = [str(python), "-m", "celery", "-A", "celery_app", "worker"]
            worker += ["--pool", pool, "--concurrency", str(concurrency), "--loglevel", "warning"]
            worker += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
            procs.append(subprocess.Popen(worker, cwd=HERE, env=client_env, stdout=log, stderr=log))
            yield python, client_env
        finally:
            for p in reversed(procs):
                stop(p)
            log.close()


def _client(python: Path, client_env: dict[str, str], *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [str(python), "celery_app.py", *args],
        cwd=HERE,
        env=client_env,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    if done.returncode != 0:
        raise PeerError(f"celery client {' '.join(args)} failed: {done.stderr.strip()[-1500:]}")
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def throughput(tasks: int, processes: int = 2) -> float:
    """No-op tasks per second (first submit to last result) on a prefork worker."""
    with celery("prefork", processes) as (python, client_env):
        return float(_client(python, client_env, "throughput", str(tasks))["tasks_per_second"])


def chains(workflows: dict[int, int], step_ms: float) -> dict[int, dict[str, Any]]:
    """For each concurrency level, its number of chains of 3 simulated calls of step_ms,
    run that many at a time on one thread-pool worker with a thread per concurrent
    chain: p50/p99 of the time above the floor, by level."""
    with celery("threads", max(workflows)) as (python, client_env):
        return {
            c: _client(python, client_env, "chains", str(c), str(n), str(step_ms))
            for c, n in workflows.items()
        }
