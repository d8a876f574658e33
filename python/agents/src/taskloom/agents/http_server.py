"""The worker's HTTP port: /healthz, /readyz (registered with the orchestrator) and
/metrics. Several workers share a host, so a busy port moves on to the next ones."""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Callable
from typing import Any

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

PORT_SEARCH = 20


def build_app(
    registry: CollectorRegistry,
    is_ready: Callable[[], bool],
    details: Callable[[], dict[str, Any]] = dict,
) -> Starlette:
    """`details` adds to /readyz what is worth knowing but does not make the worker unready
    (each LLM endpoint's circuit breaker)."""

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        if is_ready():
            return JSONResponse({"status": "ok", **details()})
        return JSONResponse(
            {
                "status": "unavailable",
                "not_ready": ["orchestrator"],
                "detail": "not registered with the orchestrator",
                **details(),
            },
            status_code=503,
        )

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
        ]
    )


def bind_with_fallback(addr: str, search: int = PORT_SEARCH) -> socket.socket:
    """Bind host:port, or the first free port of the next `search` ones (port 0: any)."""
    host, _, port_text = addr.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    port = int(port_text)
    last: OSError | None = None
    for candidate in range(port, port + search + 1) if port else [0]:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, candidate))
        except OSError as err:
            sock.close()
            if err.errno != errno.EADDRINUSE:
                raise
            last = err
            continue
        sock.listen(128)
        sock.setblocking(False)
        return sock
    raise OSError(errno.EADDRINUSE, f"no free port in {port}..{port + search} on {host}") from last


class HttpServer:
    def __init__(self, app: Starlette, addr: str) -> None:
        self._sock = bind_with_fallback(addr)
        host, port = self._sock.getsockname()[:2]
        self.addr = f"{host}:{port}"
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve(sockets=[self._sock]), name="http")

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task
        self._sock.close()
