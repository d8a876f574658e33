"""`python -m taskloom.agents`: read the settings, set up logging, run the worker."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import uvloop

from taskloom.agents.catalog import CatalogError
from taskloom.agents.endpoints import EndpointConfigError
from taskloom.agents.service import serve
from taskloom.agents.settings import load_settings
from taskloom.sdk.logs import configure_logging


def main(argv: Sequence[str] | None = None) -> int:
    settings = load_settings(argv)
    log = configure_logging("agent-worker", settings.log_level)
    try:
        uvloop.run(serve(settings))  # libuv's loop: less CPU per message than asyncio's
    except (CatalogError, EndpointConfigError, OSError) as err:
        log.error("agent worker cannot start", error=str(err))
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
