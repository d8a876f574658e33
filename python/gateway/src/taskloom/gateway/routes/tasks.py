"""`/v1/tasks`: submit, read, list and cancel tasks, and stream their events."""

from __future__ import annotations

from typing import Annotated

import grpc
from fastapi import APIRouter, Path, Query, Request, Response, WebSocket
from sse_starlette import EventSourceResponse

from taskloom.gateway import convert
from taskloom.gateway.config import Settings
from taskloom.gateway.deps import (
    IdempotencyKeyHeader,
    OrchestratorDep,
    SettingsDep,
    TenantDep,
    TraceparentDep,
    authenticate,
    get_orchestrator,
    get_settings,
)
from taskloom.gateway.errors import ProblemError, problem_from_grpc
from taskloom.gateway.limits import default, int_range, text
from taskloom.gateway.models import TaskCancel, TaskCreate, TaskList, TaskOut, TaskStatusName
from taskloom.gateway.orchestrator import OrchestratorSession
from taskloom.gateway.streaming import sse_response, websocket_error, websocket_relay
from taskloom.gateway.telemetry import TRACEPARENT
from taskloom.v1 import common_pb2, orchestrator_pb2

router = APIRouter(prefix="/v1/tasks", tags=["tasks"])

TaskId = Annotated[str, Path(**text(orchestrator_pb2.GetTaskRequest, "id"))]
_LIST = orchestrator_pb2.ListTasksRequest


async def _owned_task(
    orchestrator: OrchestratorSession, task_id: TaskId, tenant: str, settings: Settings
) -> common_pb2.Task:
    """The task, or 404 when it belongs to another tenant (tenants never see each other)."""
    task = await orchestrator.get_task(task_id)
    if settings.auth_enabled and task.tenant != tenant:
        raise ProblemError(404, "TASK_NOT_FOUND", f"Task {task_id} does not exist.")
    return task


@router.post(
    "",
    status_code=202,
    response_model=TaskOut,
    responses={200: {"model": TaskOut, "description": "The Idempotency-Key matched a task"}},
)
async def submit_task(
    body: TaskCreate,
    response: Response,
    tenant: TenantDep,
    orchestrator: OrchestratorDep,
    traceparent: TraceparentDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> TaskOut:
    """Queue one task; 202 with its state, or 200 when the Idempotency-Key was seen before."""
    spec = convert.task_spec(
        body,
        tenant=tenant,
        idempotency_key=idempotency_key or "",
        labels={TRACEPARENT: traceparent},
    )
    submitted = await orchestrator.submit_task(spec)
    response.status_code = 200 if submitted.existing else 202
    response.headers["Location"] = f"/v1/tasks/{submitted.task.id}"
    return convert.task_out(submitted.task)


@router.get("")
async def list_tasks(
    tenant: TenantDep,
    orchestrator: OrchestratorDep,
    status: TaskStatusName | None = None,
    agent: Annotated[str, Query(**text(_LIST, "agent"))] = "",
    page_size: Annotated[int, Query(**int_range(_LIST, "page_size"))] = default(_LIST, "page_size"),
    page_token: Annotated[str, Query(**text(_LIST, "page_token"))] = "",
) -> TaskList:
    """The caller's tasks, newest first, filtered by status and agent."""
    listed = await orchestrator.list_tasks(
        orchestrator_pb2.ListTasksRequest(
            page_size=page_size,
            page_token=page_token,
            tenant=tenant,
            status=convert.task_status_number(status)
            if status
            else common_pb2.TASK_STATUS_UNSPECIFIED,
            agent=agent,
        )
    )
    return TaskList(
        tasks=[convert.task_out(t) for t in listed.tasks],
        next_page_token=listed.next_page_token or None,
    )


@router.get("/{task_id}")
async def get_task(
    task_id: TaskId, tenant: TenantDep, orchestrator: OrchestratorDep, settings: SettingsDep
) -> TaskOut:
    return convert.task_out(await _owned_task(orchestrator, task_id, tenant, settings))


@router.post("/{task_id}/cancel")
async def cancel_task(
    task_id: TaskId,
    tenant: TenantDep,
    orchestrator: OrchestratorDep,
    settings: SettingsDep,
    body: TaskCancel | None = None,
) -> TaskOut:
    """Stop a queued or running task; 409 TASK_FINISHED when it has already finished."""
    if settings.auth_enabled:
        await _owned_task(orchestrator, task_id, tenant, settings)
    task = await orchestrator.cancel_task(task_id, body.reason if body else "")
    return convert.task_out(task)


@router.get(
    "/{task_id}/events",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def task_events(
    task_id: TaskId,
    request: Request,
    tenant: TenantDep,
    orchestrator: OrchestratorDep,
    settings: SettingsDep,
) -> EventSourceResponse:
    """Server-Sent Events: `status` {status}, `chunk` {seq, text, attempt}, then `done`
    with the final task, after which the stream ends. A failure mid-stream is an `error`
    event holding a problem+json body.
    """
    if settings.auth_enabled:
        await _owned_task(orchestrator, task_id, tenant, settings)
    stream = await orchestrator.watch_task(task_id)
    return sse_response(stream, convert.task_event, request.url.path)


@router.websocket("/{task_id}/ws")
async def task_events_ws(websocket: WebSocket, task_id: TaskId) -> None:
    """The events of `/events` as WebSocket messages `{"event": ..., "data": ...}`."""
    settings = get_settings(websocket)
    orchestrator = get_orchestrator(websocket)
    try:
        tenant = authenticate(websocket, settings)
        if settings.auth_enabled:
            await _owned_task(orchestrator, task_id, tenant, settings)
        stream = await orchestrator.watch_task(task_id)
    except ProblemError as problem:
        await websocket_error(websocket, problem)
        return
    except grpc.aio.AioRpcError as err:
        await websocket_error(websocket, problem_from_grpc(err))
        return
    await websocket_relay(websocket, stream, convert.task_event)
