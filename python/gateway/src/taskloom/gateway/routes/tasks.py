"""`/v1/tasks`: submit one or a batch, read, list and cancel tasks, and stream their events.

Every call names the caller's tenant to the orchestrator, which answers 404 for another
tenant's task: one call per request, no read-then-act here.
"""

from __future__ import annotations

from typing import Annotated, Any

import grpc
from fastapi import APIRouter, Header, Path, Query, Request, Response, WebSocket
from sse_starlette import EventSourceResponse

from taskloom.gateway import convert
from taskloom.gateway.auth import Caller
from taskloom.gateway.deps import (
    CallerDep,
    IdempotencyKeyHeader,
    OrchestratorDep,
    get_caller,
    get_orchestrator,
)
from taskloom.gateway.errors import ProblemError, problem_from_grpc
from taskloom.gateway.limits import default, int_field_bounds, text
from taskloom.gateway.models import (
    TaskBatch,
    TaskBatchCreate,
    TaskCancel,
    TaskCreate,
    TaskList,
    TaskOut,
    TaskStatusName,
)
from taskloom.gateway.openapi import problems
from taskloom.gateway.streaming import sse_response, websocket_refusal, websocket_relay
from taskloom.v1 import common_pb2, orchestrator_pb2

router = APIRouter(prefix="/v1/tasks", tags=["tasks"])

TaskId = Annotated[str, Path(**text(orchestrator_pb2.GetTaskRequest, "id"))]
_LIST = orchestrator_pb2.ListTasksRequest
# An SSE event id: "<attempt>.<seq>" of the last chunk the client has (empty: none).
EVENT_ID_PATTERN = r"^([0-9]{1,9}\.[0-9]{1,18})?$"
LastEventId = Annotated[
    str,
    Header(
        alias="Last-Event-ID",
        pattern=EVENT_ID_PATTERN,
        description="Resume after this event: the id (attempt.seq) of the last chunk received",
    ),
]
TenantFilter = Annotated[
    str,
    Query(
        **text(_LIST, "tenant"),
        description="Admin keys only: this tenant's tasks (empty: every tenant's)",
    ),
]


def listed_tenant(caller: Caller, tenant: str) -> str:
    """The tenant a list shows: a caller's own, or for an admin the one asked for (any)."""
    if caller.admin:
        return tenant
    if tenant and tenant != caller.tenant:
        raise ProblemError(403, "PERMISSION_DENIED", "Only an admin key lists another tenant's.")
    return caller.tenant


@router.post(
    "",
    status_code=202,
    response_model=TaskOut,
    responses={
        200: {"model": TaskOut, "description": "The Idempotency-Key matched a task"},
        **problems(400, 404, 409, 413),
    },
)
async def submit_task(
    body: TaskCreate,
    response: Response,
    caller: CallerDep,
    orchestrator: OrchestratorDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> TaskOut:
    """Queue one task; 202 with its state, or 200 when the Idempotency-Key was seen before."""
    spec = convert.task_spec(
        body,
        tenant=caller.tenant,
        idempotency_key=idempotency_key or "",
    )
    submitted = await orchestrator.submit_task(spec)
    response.status_code = 200 if submitted.existing else 202
    response.headers["Location"] = f"/v1/tasks/{submitted.task.id}"
    return convert.task_out(submitted.task)


@router.post(":batch", status_code=202, responses=problems(400, 404, 409, 413))
async def submit_tasks(
    body: TaskBatchCreate,
    caller: CallerDep,
    orchestrator: OrchestratorDep,
) -> TaskBatch:
    """Queue many tasks, all or none: one bad item (named in `errors` as `tasks.N.field`)
    queues nothing. An item whose idempotency_key was seen before gives the first task."""
    specs = [
        convert.task_spec(
            item,
            tenant=caller.tenant,
            idempotency_key=item.idempotency_key or "",
        )
        for item in body.tasks
    ]
    return TaskBatch(tasks=[convert.task_out(t) for t in await orchestrator.submit_tasks(specs)])


@router.get("", responses=problems(403))
async def list_tasks(
    caller: CallerDep,
    orchestrator: OrchestratorDep,
    status: TaskStatusName | None = None,
    agent: Annotated[str, Query(**text(_LIST, "agent"))] = "",
    page_size: Annotated[int, Query(**int_field_bounds(_LIST, "page_size"))] = default(
        _LIST, "page_size"
    ),
    page_token: Annotated[str, Query(**text(_LIST, "page_token"))] = "",
    tenant: TenantFilter = "",
) -> TaskList:
    """The caller's tasks, newest first, filtered by status and agent."""
    listed = await orchestrator.list_tasks(
        orchestrator_pb2.ListTasksRequest(
            page_size=page_size,
            page_token=page_token,
            tenant=listed_tenant(caller, tenant),
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


@router.get("/{task_id}", responses=problems(404))
async def get_task(task_id: TaskId, caller: CallerDep, orchestrator: OrchestratorDep) -> TaskOut:
    return convert.task_out(await orchestrator.get_task(task_id, caller.scope))


@router.post("/{task_id}/cancel", responses=problems(400, 404, 409, 413))
async def cancel_task(
    task_id: TaskId,
    caller: CallerDep,
    orchestrator: OrchestratorDep,
    body: TaskCancel | None = None,
) -> TaskOut:
    """Stop a queued or running task; 409 TASK_FINISHED when it has already finished."""
    task = await orchestrator.cancel_task(task_id, caller.scope, body.reason if body else "")
    return convert.task_out(task)


def watch_request(
    task_id: str, tenant: str, last_event_id: str
) -> orchestrator_pb2.WatchTaskRequest:
    req = orchestrator_pb2.WatchTaskRequest(id=task_id, tenant=tenant)
    if last_event_id:
        attempt, _, seq = last_event_id.partition(".")
        req.from_attempt, req.from_seq = int(attempt), int(seq)
    return req


def chunk_event_id(name: str, data: dict[str, Any]) -> str | None:
    """A chunk's SSE id, `<attempt>.<seq>`: what a client resumes from (Last-Event-ID)."""
    return f"{data['attempt']}.{data['seq']}" if name == "chunk" else None


@router.get(
    "/{task_id}/events",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}}, **problems(404)},
)
async def task_events(
    task_id: TaskId,
    request: Request,
    caller: CallerDep,
    orchestrator: OrchestratorDep,
    last_event_id: LastEventId = "",
) -> EventSourceResponse:
    """Server-Sent Events: `status` {status}, `chunk` {seq, text, attempt} (id
    `attempt.seq`), then `done` with the final task, after which the stream ends. A client
    that reconnects with `Last-Event-ID` gets the status, then only the chunks after that
    one. A failure mid-stream is an `error` event holding a problem+json body.
    """
    stream = await orchestrator.watch_task(watch_request(task_id, caller.scope, last_event_id))
    return sse_response(stream, convert.task_event, request.url.path, chunk_event_id)


@router.websocket("/{task_id}/ws")
async def task_events_ws(websocket: WebSocket, task_id: TaskId) -> None:
    """The events of `/events` as WebSocket messages `{"event": ..., "data": ...}`. A
    caller without a valid key, or a task it may not see, is refused at the handshake
    (HTTP 401, 404, ... with a problem+json body): the socket never opens."""
    orchestrator = await get_orchestrator(websocket)
    try:
        caller = await get_caller(websocket)
        stream = await orchestrator.watch_task(watch_request(task_id, caller.scope, ""))
    except ProblemError as problem:
        await websocket_refusal(websocket, problem)
        return
    except grpc.aio.AioRpcError as err:
        await websocket_refusal(websocket, problem_from_grpc(err))
        return
    await websocket_relay(websocket, stream, convert.task_event)
