"""Builds the FastAPI app: settings, the backends' channels, middleware, errors, routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from taskloom.gateway import openapi
from taskloom.gateway.auth import Authenticator
from taskloom.gateway.body_limit import BodySizeLimit
from taskloom.gateway.config import Settings
from taskloom.gateway.errors import install_error_handlers
from taskloom.gateway.limits import max_request_bytes
from taskloom.gateway.orchestrator import Orchestrator
from taskloom.gateway.ratelimit import RateLimits
from taskloom.gateway.routes import (
    agents,
    collections,
    console,
    health,
    metrics,
    sessions,
    tasks,
    usage,
    workflows,
)
from taskloom.gateway.telemetry import TelemetryMiddleware
from taskloom.sdk import tracing
from taskloom.sdk.collections import Collections
from taskloom.sdk.sessions import RedisSessions
from taskloom.v1 import metrics_pb2_grpc


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The channel is created here so that it belongs to the server's event loop.
        app.state.orchestrator = Orchestrator(
            settings.orchestrator_addr,
            settings.grpc_timeout_seconds,
            settings.orchestrator_token.get_secret_value(),
        )
        metrics_channel = tracing.aio_channel(settings.metrics_addr)
        app.state.metrics = metrics_pb2_grpc.MetricsServiceStub(metrics_channel)
        app.state.rate_limits = RateLimits(settings)
        app.state.sessions = (
            RedisSessions(settings.sessions_redis_url) if settings.sessions_redis_url else None
        )
        app.state.collections = (
            Collections(settings.vector_addr, settings.build_embedder())
            if settings.vector_addr
            else None
        )
        try:
            yield
        finally:
            await app.state.orchestrator.close()
            await metrics_channel.close()
            if app.state.collections is not None:
                await app.state.collections.aclose()
                await app.state.collections.embedder.aclose()
            if app.state.sessions is not None:
                await app.state.sessions.aclose()

    app = FastAPI(
        title="Taskloom",
        summary="Submit AI-agent tasks and workflows, read their results, stream their events.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.authenticator = Authenticator(settings)
    app.add_middleware(BodySizeLimit, max_bytes=max_request_bytes())
    app.add_middleware(TelemetryMiddleware)
    install_error_handlers(app)
    openapi.install(app)
    for module in (tasks, agents, workflows, usage, sessions, collections, health, metrics):
        app.include_router(module.router)
    console.install(app)
    return app
