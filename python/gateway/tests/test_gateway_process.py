"""`python -m taskloom.gateway` as a process: SIGTERM with event streams open exits 0."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from taskloom.testing.fake_orchestrator import FakeOrchestrator
from taskloom.testing.servers import unused_address

WAIT_S = 20.0  # generous bounds: a hang fails the test instead of blocking the suite


def _wait_until(check: object, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _healthy(base_url: str, proc: subprocess.Popen[bytes]) -> bool:
    assert proc.poll() is None, "the gateway exited during start-up"
    try:
        return httpx.get(f"{base_url}/healthz").status_code == 200
    except httpx.TransportError:
        return False


# A grace far longer than the wait below: the process only exits in time if the open
# streams are closed at shutdown rather than left to run out the grace. And no grace at all.
@pytest.mark.parametrize("grace", ["60", "0"])
def test_sigterm_with_open_sse_and_websocket_streams_exits_zero(
    fake_orchestrator: tuple[FakeOrchestrator, str], grace: str
) -> None:
    fake, orchestrator_addr = fake_orchestrator
    http_addr = unused_address()
    base_url = f"http://{http_addr}"
    env = {
        **os.environ,
        "TASKLOOM_ORCHESTRATOR_ADDR": orchestrator_addr,
        "TASKLOOM_HTTP_ADDR": http_addr,
        "TASKLOOM_SHUTDOWN_GRACE_SECONDS": grace,
        "TASKLOOM_LOG_LEVEL": "warning",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "taskloom.gateway"], env=env, stderr=subprocess.DEVNULL
    )
    try:
        _wait_until(lambda: _healthy(base_url, proc), "the gateway to start")
        with httpx.Client(base_url=base_url, timeout=WAIT_S) as http:
            # `wait` runs until cancelled: the watched task never finishes.
            task_id = http.post("/v1/tasks", json={"agent": "wait"}).json()["id"]
            with (
                http.stream("GET", f"/v1/tasks/{task_id}/events") as sse,
                connect(f"ws://{http_addr}/v1/tasks/{task_id}/ws", open_timeout=WAIT_S) as ws,
            ):
                assert sse.status_code == 200
                assert '"event":"status"' in ws.recv(timeout=WAIT_S)
                _wait_until(lambda: fake.open_watches == 2, "both streams to be open")

                proc.send_signal(signal.SIGTERM)
                assert proc.wait(timeout=WAIT_S) == 0
                # The server ended the stream (sse-starlette drops the connection at
                # shutdown rather than ending the chunked body; clients reconnect).
                with contextlib.suppress(httpx.RemoteProtocolError):
                    sse.read()
                with pytest.raises(ConnectionClosed):
                    ws.recv(timeout=WAIT_S)
        _wait_until(lambda: fake.open_watches == 0, "the orchestrator watches to be cancelled")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
