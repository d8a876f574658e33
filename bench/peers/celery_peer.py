"""The `celery+redis` peer of the orchestrator scenario: no-op tasks through Celery
with a Redis broker and result backend, timed from the first submit to the last result.

Celery lives in its own virtualenv (.run/bench-venv, made on first use) so it never
touches the project's; redis-server comes from PATH and runs on a free loopback port.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".run" / "bench-venv"
CELERY_REQUIREMENT = "celery[redis]==5.7.0"
WORKER_PROCESSES = 2


@dataclass
class PeerRun:
    tasks_per_second: float | None
    # Why there is no figure, when there is none.
    reason: str = ""


def measure(tasks: int) -> PeerRun:
    """Runs `tasks` no-op Celery tasks; a missing Redis or Celery yields a reason, not an error."""
    redis = shutil.which("redis-server")
    if redis is None:
        return PeerRun(None, "redis-server is not on PATH")
    try:
        python = _bench_venv()
    except subprocess.CalledProcessError as e:
        return PeerRun(None, f"could not install {CELERY_REQUIREMENT}: {e.stderr or e}")
    here = Path(__file__).parent
    with (
        tempfile.TemporaryDirectory(prefix="taskloom-celery-peer-") as tmp,
        open(Path(tmp) / "peer.log", "wb") as log,
    ):
        port = _free_port()
        env = {**os.environ, "BENCH_REDIS_URL": f"redis://127.0.0.1:{port}/0"}
        redis_cmd = [redis, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        redis_cmd += ["--appendonly", "no", "--dir", tmp]
        worker_cmd = [str(python), "-m", "celery", "-A", "celery_app", "worker"]
        worker_cmd += ["--pool", "prefork", "--concurrency", str(WORKER_PROCESSES)]
        worker_cmd += ["--loglevel", "warning", "--without-gossip", "--without-mingle"]
        worker_cmd += ["--without-heartbeat"]
        procs: list[subprocess.Popen[bytes]] = []
        try:
            procs.append(subprocess.Popen(redis_cmd, stdout=log, stderr=log))
            _wait_port(port)
            procs.append(subprocess.Popen(worker_cmd, cwd=here, env=env, stdout=log, stderr=log))
            client = [str(python), "celery_app.py", str(tasks)]
            done = subprocess.run(
                client, cwd=here, env=env, capture_output=True, text=True, timeout=300, check=False
            )
            if done.returncode != 0:
                return PeerRun(None, f"celery client failed: {done.stderr.strip()[-500:]}")
            return PeerRun(json.loads(done.stdout.strip().splitlines()[-1])["tasks_per_second"])
        except (OSError, subprocess.TimeoutExpired, TimeoutError) as e:
            return PeerRun(None, f"celery peer did not run: {e}")
        finally:
            for p in reversed(procs):
                p.terminate()
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


def _bench_venv() -> Path:
    """The bench virtualenv's python, with Celery installed (once)."""
    python = VENV / "bin" / "python"
    check = [str(python), "-c", "import celery, redis"]
    if python.exists() and subprocess.run(check, capture_output=True, check=False).returncode == 0:
        return python
    subprocess.run(
        [sys.executable, "-m", "venv", str(VENV)], check=True, capture_output=True, text=True
    )
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", CELERY_REQUIREMENT],
        check=True,
        capture_output=True,
        text=True,
    )
    return python


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"redis-server did not listen on port {port} within {timeout}s")
