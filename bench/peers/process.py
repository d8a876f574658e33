"""Running the peers' processes: their scripts (one JSON line on stdout), the servers
they need on free loopback ports, and stopping what was started."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


class PeerError(RuntimeError):
    """A peer could not be measured; the message says why."""


def run_script(python: Path, script: str, *args: str, timeout: float = 1800) -> dict[str, Any]:
    """Runs bench/peers/<script> with the peer's python; returns its JSON line."""
    cmd = [str(python), str(HERE / script), *args]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as err:
        raise PeerError(f"{script} {' '.join(args)} took over {timeout:.0f} s") from err
    if done.returncode != 0:
        raise PeerError(f"{script} {' '.join(args)} failed: {done.stderr.strip()[-2000:]}")
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise PeerError(f"nothing listened on port {port} within {timeout} s")


def stop(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM, then SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
