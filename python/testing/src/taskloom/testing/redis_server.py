"""A real `redis-server` for tests, on a free loopback port, with nothing persisted; its
URL is yielded. A missing redis-server fails the test (`make deps` installs it)."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

START_S = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(proc: subprocess.Popen[bytes], port: int, name: str) -> None:
    """Returns once the process accepts connections on the port; raises if it exits or
    takes longer than START_S."""
    deadline = time.monotonic() + START_S
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
            return
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not start on port {port}")
        time.sleep(0.02)


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise FileNotFoundError("redis-server is not installed: run 'make deps'")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="taskloom-redis-") as data:
        argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        proc = subprocess.Popen([*argv, "--dir", data], stdout=subprocess.DEVNULL)
        try:
            wait_listening(proc, port, "redis-server")
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.terminate()
            proc.wait(timeout=10)
