"""The `bare-fastapi` peer of the e2e scenario: an endpoint that answers 202 and does
nothing else, served by uvicorn under the gateway's settings (uvloop, httptools)."""

from __future__ import annotations

from fastapi import FastAPI

app = FastAPI()


@app.post("/v1/tasks", status_code=202)
async def submit() -> dict[str, str]:
    return {"status": "queued"}
