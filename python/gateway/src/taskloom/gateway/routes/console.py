"""`/console`: the web console, static files of this package (console/) served as they are.
The page holds no data and needs no key; its script calls the REST and SSE API with the
key the user enters, so the API's authentication, tenancy and limits apply unchanged."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

CONSOLE_DIR = Path(__file__).resolve().parent.parent / "console"
PATH = "/console"


def install(app: FastAPI) -> None:
    """Serve the console at /console/ (and redirect /console there), outside the OpenAPI."""

    @app.get(PATH, include_in_schema=False)
    async def console_root() -> RedirectResponse:
        # Relative links in the page (console.js, console.css) resolve under /console/.
        return RedirectResponse(f"{PATH}/", status_code=308)

    app.mount(PATH, StaticFiles(directory=CONSOLE_DIR, html=True), name="console")
