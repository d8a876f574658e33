"""FastAPI dependencies, as `Annotated` aliases the routes take as parameters."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Header
from starlette.requests import HTTPConnection

from taskloom.gateway.config import Settings
from taskloom.gateway.errors import ProblemError
from taskloom.gateway.limits import TaskSpec, text
from taskloom.gateway.orchestrator import Orchestrator, OrchestratorSession
from taskloom.gateway.telemetry import TRACEPARENT


def get_settings(conn: HTTPConnection) -> Settings:
    settings: Settings = conn.app.state.settings
    return settings


def get_traceparent(conn: HTTPConnection) -> str:
    """The request's W3C trace context, accepted or created by TelemetryMiddleware."""
    return str(conn.scope["state"][TRACEPARENT])


def get_orchestrator(conn: HTTPConnection) -> OrchestratorSession:
    orchestrator: Orchestrator = conn.app.state.orchestrator
    return orchestrator.session(get_traceparent(conn))


def _presented_key(conn: HTTPConnection) -> str | None:
    auth = conn.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return conn.headers.get("x-api-key") or None


def authenticate(conn: HTTPConnection, settings: Settings) -> str:
    """The tenant of the caller: from its API key when keys are configured, else the default."""
    if not settings.auth_enabled:
        return settings.default_tenant
    presented = _presented_key(conn)
    if presented is not None:
        for key, tenant in settings.api_keys.items():
            if hmac.compare_digest(presented.encode(), key.encode()):
                return tenant
    detail = (
        "The API key is not valid."
        if presented
        else "An API key is required: send `Authorization: Bearer <key>` or `X-API-Key: <key>`."
    )
    raise ProblemError(401, "UNAUTHENTICATED", detail, headers={"WWW-Authenticate": "Bearer"})


SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_tenant(conn: HTTPConnection, settings: SettingsDep) -> str:
    return authenticate(conn, settings)


TenantDep = Annotated[str, Depends(get_tenant)]
TraceparentDep = Annotated[str, Depends(get_traceparent)]
OrchestratorDep = Annotated[OrchestratorSession, Depends(get_orchestrator)]
IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        **text(TaskSpec, "idempotency_key"),
        description="Retrying with the same key returns the first request's result",
    ),
]
