"""`/healthz`, `/readyz` and `/metrics`: liveness, readiness and Prometheus exposition."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from taskloom.gateway.deps import SettingsDep
from taskloom.gateway.errors import ProblemError
from taskloom.gateway.models import Health
from taskloom.gateway.orchestrator import Orchestrator

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", responses={503: {"description": "The orchestrator is not serving"}})
async def readyz(request: Request, settings: SettingsDep) -> Health:
    orchestrator: Orchestrator = request.app.state.orchestrator
    if await orchestrator.serving(settings.ready_timeout_seconds):
        return Health(status="ready", checks={"orchestrator": "serving"})
    raise ProblemError(
        503,
        "UNAVAILABLE",
        f"The orchestrator at {orchestrator.addr} is not serving.",
        headers={"Retry-After": "1"},
        extra={"checks": {"orchestrator": "not_serving"}},
    )


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
