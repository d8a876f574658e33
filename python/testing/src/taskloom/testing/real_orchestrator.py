"""The real orchestrator binary for tests: `bin/taskloom-orchestrator` on loopback ports the
system chose, with its store in a temporary directory and an `EchoWorker` registered."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from taskloom.testing.echo_worker import EchoWorker
from taskloom.testing.servers import START_S, LoopThread, unused_address


@contextlib.contextmanager
def serve_real_orchestrator(binary: Path, data_dir: Path, *flags: str) -> Iterator[str]:
    """Yield the gRPC address of a running orchestrator with the echo worker registered."""
    if not binary.exists():
        raise FileNotFoundError(f"{binary} not found: run 'make build-go' first")
    grpc_addr, http_addr = unused_address(), unused_address()
    data_dir.mkdir(parents=True, exist_ok=True)
    log = (data_dir / "orchestrator.log").open("ab")
    argv = [str(binary), "--grpc-addr", grpc_addr, "--http-addr", http_addr]
    argv += ["--data-dir", str(data_dir), "--log-level", "warn", *flags]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    runner: LoopThread | None = None
    worker: EchoWorker | None = None
    try:
        _wait_ready(proc, f"http://{http_addr}/readyz", data_dir / "orchestrator.log")
        runner = LoopThread()
        worker = runner.run(_start_worker(grpc_addr))
        yield grpc_addr
    finally:
        if runner is not None:
            if worker is not None:
                runner.run(worker.stop())
            runner.stop()
        proc.terminate()
        try:
            proc.wait(timeout=START_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


async def _start_worker(addr: str) -> EchoWorker:
    worker = EchoWorker(addr)
    worker.start()
    await asyncio.wait_for(worker.registered.wait(), START_S)
    return worker


def _wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + START_S
    while True:
        if proc.poll() is not None:
            raise RuntimeError(
                f"the orchestrator exited with {proc.returncode}:\n{log.read_text()}"
            )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"the orchestrator was not ready after {START_S} s")
        time.sleep(0.05)
