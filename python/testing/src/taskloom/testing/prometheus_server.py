"""A real Prometheus for tests, on a free loopback port with a temporary data directory,
scraping as the given config says; the base URL of its HTTP API (`…/api/v1`) is yielded
once it is ready. A missing prometheus fails the test (`make deps` installs Debian's)."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from taskloom.testing.redis_server import free_port

READY_S = 60.0


def wait_ready(proc: subprocess.Popen[bytes], url: str) -> None:
    """Returns once Prometheus answers /-/ready with 200; raises if it exits or takes
    longer than READY_S."""
    deadline = time.monotonic() + READY_S
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/-/ready", timeout=2).status_code == 200:
                return
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"prometheus did not become ready at {url}")
        time.sleep(0.1)


@contextlib.contextmanager
def prometheus_server(config_path: Path, *flags: str) -> Iterator[str]:
    binary = shutil.which("prometheus")
    if binary is None:
        raise FileNotFoundError("prometheus is not installed: run 'make deps'")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="taskloom-prometheus-") as data:
        argv = [
            binary,
            f"--config.file={config_path}",
            f"--storage.tsdb.path={data}",
            f"--web.listen-address=127.0.0.1:{port}",
            *flags,
        ]
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_ready(proc, url)
            yield f"{url}/api/v1"
        finally:
            proc.terminate()
            proc.wait(timeout=10)
