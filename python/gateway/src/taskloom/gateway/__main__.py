"""`python -m taskloom.gateway`: read settings, log them, serve the app with uvicorn."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator

import uvicorn
from pydantic_settings import CliApp

from taskloom.gateway.app import create_app
from taskloom.gateway.config import Settings
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


def main(argv: list[str] | None = None) -> None:
    settings = CliApp.run(Settings, cli_args=sys.argv[1:] if argv is None else argv)
    log = configure_logging("gateway", settings.log_level)
    log.info("starting", settings=settings.masked())
    host, port = settings.http_host_port
    config = uvicorn.Config(
        create_app(settings),
        host=host,
        port=port,
        log_config=None,  # keep uvicorn's records on the JSON handler set up above
        log_level=settings.log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds) or None,
    )
    _Server(config).run()
    log.info("stopped")


if __name__ == "__main__":
    main()
