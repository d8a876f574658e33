"""`/v1/workflows`: passed through to the orchestrator's workflow engine."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from sse_starlette import EventSourceResponse

from taskloom.gateway import convert
from taskloom.gateway.config import Settings
from taskloom.gateway.deps import (
    IdempotencyKeyHeader,
    OrchestratorDep,
    SettingsDep,
    TenantDep,
    TraceparentDep,
)
from taskloom.gateway.errors import ProblemError
from taskloom.gateway.limits import text
from taskloom.gateway.models import WorkflowCancel, WorkflowCreate, WorkflowOut
from taskloom.gateway.orchestrator import OrchestratorSession
from taskloom.gateway.streaming import sse_response
from taskloom.gateway.telemetry import TRACEPARENT
from taskloom.v1 import orchestrator_pb2

router = APIRouter(prefix="/v1/workflows", tags=["workflows"])

WorkflowId = Annotated[str, Path(**text(orchestrator_pb2.GetWorkflowRequest, "id"))]


async def _owned_workflow(
    orchestrator: OrchestratorSession, workflow_id: WorkflowId, tenant: str, settings: Settings
) -> orchestrator_pb2.Workflow:
    workflow = await orchestrator.get_workflow(workflow_id)
    if settings.auth_enabled and workflow.spec.tenant != tenant:
        raise ProblemError(404, "WORKFLOW_NOT_FOUND", f"Workflow {workflow_id} does not exist.")
    return workflow


@router.post(
    "",
    status_code=202,
    response_model=WorkflowOut,
    responses={200: {"model": WorkflowOut, "description": "The Idempotency-Key matched"}},
)
async def submit_workflow(
    body: WorkflowCreate,
    response: Response,
    tenant: TenantDep,
    orchestrator: OrchestratorDep,
    traceparent: TraceparentDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> WorkflowOut:
    spec = convert.workflow_spec(
        body,
        tenant=tenant,
        idempotency_key=idempotency_key or "",
        labels={TRACEPARENT: traceparent},
    )
    submitted = await orchestrator.submit_workflow(spec)
    response.status_code = 200 if submitted.existing else 202
    response.headers["Location"] = f"/v1/workflows/{submitted.workflow.id}"
    return convert.workflow_out(submitted.workflow)


@router.get("/{workflow_id}")
async def get_workflow(
    workflow_id: WorkflowId, tenant: TenantDep, orchestrator: OrchestratorDep, settings: SettingsDep
) -> WorkflowOut:
    return convert.workflow_out(await _owned_workflow(orchestrator, workflow_id, tenant, settings))


@router.post("/{workflow_id}/cancel")
async def cancel_workflow(
    workflow_id: WorkflowId,
    tenant: TenantDep,
    orchestrator: OrchestratorDep,
    settings: SettingsDep,
    body: WorkflowCancel | None = None,
) -> WorkflowOut:
    if settings.auth_enabled:
        await _owned_workflow(orchestrator, workflow_id, tenant, settings)
    workflow = await orchestrator.cancel_workflow(workflow_id, body.reason if body else "")
    return convert.workflow_out(workflow)


@router.get(
    "/{workflow_id}/events",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def workflow_events(
    workflow_id: WorkflowId,
    request: Request,
    tenant: TenantDep,
    orchestrator: OrchestratorDep,
    settings: SettingsDep,
) -> EventSourceResponse:
    """Server-Sent Events: `status` {status}, `step` {step_id, event, data}, then `done`
    with the final workflow.
    """
    if settings.auth_enabled:
        await _owned_workflow(orchestrator, workflow_id, tenant, settings)
    stream = await orchestrator.watch_workflow(workflow_id)
    return sse_response(stream, convert.workflow_event, request.url.path)
