"""The real vector service (`bin/taskloom-vector`, built by `make build`) for tests, on
free loopback ports with a temporary data directory; its gRPC address is yielded."""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from taskloom.testing.redis_server import free_port, wait_listening

BINARY = Path(__file__).resolve().parents[5] / "bin" / "taskloom-vector"


@contextlib.contextmanager
def vector_server(binary: Path = BINARY) -> Iterator[str]:
    if not binary.exists():
        raise FileNotFoundError(f"{binary} not found: run 'make build'")
    grpc_port, http_port = free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="taskloom-vector-") as data:
        env = {
            **os.environ,
            "TASKLOOM_GRPC_ADDR": f"127.0.0.1:{grpc_port}",
            "TASKLOOM_HTTP_ADDR": f"127.0.0.1:{http_port}",
            "TASKLOOM_VECTOR_DATA_DIR": data,
        }
        proc = subprocess.Popen([str(binary)], env=env, stdout=subprocess.DEVNULL)
        try:
            wait_listening(proc, grpc_port, "taskloom-vector")
            yield f"127.0.0.1:{grpc_port}"
        finally:
            proc.terminate()
            proc.wait(timeout=10)
