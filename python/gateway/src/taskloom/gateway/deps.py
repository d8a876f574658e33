"""FastAPI dependencies, as `Annotated` aliases the routes take as parameters.

They are `async def` although they never wait: FastAPI runs a plain `def` dependency in
its thread pool, a thread hop per dependency per request, which py-spy showed to be most
of the gateway's time per request under load.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Header
from starlette.requests import HTTPConnection

from taskloom.gateway.auth import Authenticator, Caller
from taskloom.gateway.config import Settings
from taskloom.gateway.limits import TaskSpec, text
from taskloom.gateway.orchestrator import Orchestrator, OrchestratorSession
from taskloom.gateway.ratelimit import RateLimits
from taskloom.gateway.telemetry import TRACEPARENT
from taskloom.v1 import metrics_pb2_grpc

# The metrics service's stub on an aio channel; its typed name exists in the typing stubs only.
if TYPE_CHECKING:
    MetricsStub = metrics_pb2_grpc.MetricsServiceAsyncStub
else:
    MetricsStub = metrics_pb2_grpc.MetricsServiceStub


async def get_settings(conn: HTTPConnection) -> Settings:
    settings: Settings = conn.app.state.settings
    return settings


async def get_traceparent(conn: HTTPConnection) -> str:
    """The request's W3C trace context, accepted or created by TelemetryMiddleware (with
    tracing on, its SERVER span's). It goes to the orchestrator in the call's metadata, the
    one copy of it: the orchestrator stores it in the task's `traceparent` label."""
    return str(conn.scope["state"][TRACEPARENT])


async def get_orchestrator(conn: HTTPConnection) -> OrchestratorSession:
    orchestrator: Orchestrator = conn.app.state.orchestrator
    return orchestrator.session(await get_traceparent(conn))


async def get_metrics(conn: HTTPConnection) -> MetricsStub:
    metrics: MetricsStub = conn.app.state.metrics
    return metrics


async def get_caller(conn: HTTPConnection) -> Caller:
    """The authenticated caller (401 otherwise), counted against its rate limits (429)."""
    authenticator: Authenticator = conn.app.state.authenticator
    caller = await authenticator.caller(conn, conn.app.state.orchestrator)
    rate_limits: RateLimits = conn.app.state.rate_limits
    await rate_limits.check(caller)
    return caller


SettingsDep = Annotated[Settings, Depends(get_settings)]
CallerDep = Annotated[Caller, Depends(get_caller)]


async def get_tenant(caller: CallerDep) -> str:
    """The caller's own tenant: the scope of its sessions and collections (an admin's too)."""
    return caller.tenant


TenantDep = Annotated[str, Depends(get_tenant)]
OrchestratorDep = Annotated[OrchestratorSession, Depends(get_orchestrator)]
MetricsDep = Annotated[MetricsStub, Depends(get_metrics)]
IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        **text(TaskSpec, "idempotency_key"),
        description="Retrying with the same key returns the first request's result",
    ),
]
