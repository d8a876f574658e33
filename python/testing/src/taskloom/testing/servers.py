"""Servers for tests, each on a loopback port the system chose: an asyncio loop in a
thread (for grpc.aio servers), any ASGI app (the gateway, small HTTP fakes) under uvicorn, the
gateway as a process, and a throwaway redis-server.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import httpx
import uvicorn
from starlette.types import ASGIApp

from taskloom.gateway.app import create_app
from taskloom.gateway.config import Settings

T = TypeVar("T")
START_S = 10.0  # generous: a server that cannot start fails the test instead of hanging it
# A new Python process imports the whole gateway first: on a loaded machine that alone
# has taken over 10 s.
PROCESS_START_S = 60.0


class LoopThread:
    """An asyncio event loop running in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = START_S) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()


def unused_address() -> str:
    """A loopback address with nothing listening on it (the port was free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


@contextlib.contextmanager
def serve_asgi(app: ASGIApp) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on a free loopback port; yield its base URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + START_S
            while not server.started:
                if not thread.is_alive() or time.monotonic() > deadline:
                    raise RuntimeError("the server did not start")
                time.sleep(0.01)
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            thread.join(timeout=10)


@contextlib.contextmanager
def serve_gateway(settings: Settings) -> Iterator[str]:
    """Serve the gateway on a free loopback port; yield its base URL."""
    with serve_asgi(create_app(settings)) as url:
        yield url


@contextlib.contextmanager
def serve_redis() -> Iterator[str]:
    """A throwaway `redis-server` (no persistence) on a free loopback port; yield its URL.
    A machine without redis-server fails the test: `make deps` installs it."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise FileNotFoundError("redis-server is not installed: run 'make deps'")
    port = unused_address().rpartition(":")[2]
    argv = [binary, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + START_S
        while True:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", int(port))) as s,
            ):
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=START_S)


@contextlib.contextmanager
def gateway_process(env: dict[str, str]) -> Iterator[str]:
    """`python -m taskloom.gateway` as a process with these TASKLOOM_* settings (on a free
    loopback port); yield its base URL once it answers."""
    http_addr = unused_address()
    full = {k: v for k, v in os.environ.items() if not k.startswith("TASKLOOM_")}
    full.update(env, TASKLOOM_HTTP_ADDR=http_addr, TASKLOOM_LOG_LEVEL="warning")
    proc = subprocess.Popen([sys.executable, "-m", "taskloom.gateway"], env=full)
    base_url = f"http://{http_addr}"
    try:
        deadline = time.monotonic() + PROCESS_START_S
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base_url}/healthz").status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the gateway process did not start")
            time.sleep(0.05)
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=START_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
