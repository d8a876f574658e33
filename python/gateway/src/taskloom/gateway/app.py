"""Builds the FastAPI app: settings, the orchestrator channel, middleware, errors, routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from taskloom.gateway.body_limit import BodySizeLimit
from taskloom.gateway.config import Settings
from taskloom.gateway.errors import install_error_handlers
from taskloom.gateway.limits import max_request_bytes
from taskloom.gateway.orchestrator import Orchestrator
from taskloom.gateway.routes import agents, health, metrics, tasks, workflows
from taskloom.gateway.telemetry import TelemetryMiddleware


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The channel is created here so that it belongs to the server's event loop.
        app.state.orchestrator = Orchestrator(
            settings.orchestrator_addr, settings.grpc_timeout_seconds
        )
        try:
            yield
        finally:
            await app.state.orchestrator.close()

    app = FastAPI(
        title="Taskloom",
        summary="Submit AI-agent tasks and workflows, read their results, stream their events.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.add_middleware(BodySizeLimit, max_bytes=max_request_bytes())
    app.add_middleware(TelemetryMiddleware)
    install_error_handlers(app)
    for module in (tasks, agents, workflows, health, metrics):
        app.include_router(module.router)
    return app
