"""`python -m taskloom.gateway`: read settings, log them, serve the app with uvicorn."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

import uvicorn

from taskloom.gateway.app import create_app
from taskloom.gateway.config import Settings, load_settings
from taskloom.sdk import tracing
from taskloom.sdk.logs import configure_logging


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn re-raises SIGTERM after draining, so the process would end with status 143;
        # Taskloom's services exit 0 after a clean drain.
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {
            sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def graceful_shutdown_timeout(grace_seconds: float) -> float:
    """uvicorn's `timeout_graceful_shutdown` for a grace in seconds. Never None, which would
    wait for open requests forever; 0 means no grace: requests still open at shutdown are
    cancelled at once. (Event streams close themselves at shutdown, well within any grace.)"""
    return 0.0 if grace_seconds <= 0 else float(grace_seconds)


def uvicorn_config(settings: Settings) -> uvicorn.Config:
    host, port = settings.http_host_port
    return uvicorn.Config(
        create_app(settings),
        host=host,
        port=port,
        log_config=None,  # keep uvicorn's records on the JSON handler set up above
        log_level=settings.log_level.lower(),
        access_log=False,
        # The C event loop and HTTP parser: less CPU per request than asyncio's and h11.
        loop="uvloop",
        http="httptools",
        # Annotated `int | None` by uvicorn, which hands it to asyncio.wait_for: floats work.
        timeout_graceful_shutdown=graceful_shutdown_timeout(settings.shutdown_grace_seconds),  # type: ignore[arg-type]
    )


def main(argv: list[str] | None = None) -> None:
    settings = load_settings(argv)
    log = configure_logging("gateway", settings.log_level)
    log.info("starting", settings=settings.printable())
    tracing.setup("taskloom-gateway")  # off unless OTEL_EXPORTER_OTLP_ENDPOINT is set
    try:
        _Server(uvicorn_config(settings)).run()
    finally:
        tracing.shutdown()  # the spans still queued go out before the exit
    log.info("stopped")


if __name__ == "__main__":
    main()
