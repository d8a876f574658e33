"""`/v1/workflows`: submitted as JSON or YAML, listed, read, cancelled and streamed; passed
through to the orchestrator's workflow engine with the caller's tenant (404 for another's)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

import orjson
import yaml
from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.routing import APIRoute
from sse_starlette import EventSourceResponse

from taskloom.gateway import convert
from taskloom.gateway.deps import CallerDep, IdempotencyKeyHeader, OrchestratorDep
from taskloom.gateway.errors import ProblemError
from taskloom.gateway.limits import default, int_field_bounds, text
from taskloom.gateway.models import (
    WorkflowCancel,
    WorkflowCreate,
    WorkflowList,
    WorkflowOut,
    WorkflowStatusName,
)
from taskloom.gateway.openapi import problems
from taskloom.gateway.routes.tasks import TenantFilter, listed_tenant
from taskloom.gateway.streaming import sse_response
from taskloom.v1 import orchestrator_pb2

YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml"})


class YamlBodyRoute(APIRoute):
    """A route whose JSON body may come as YAML: a YAML body is parsed and handed on as JSON,
    so one model validates both (FastAPI's documented way to change how a body is read)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            media = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if media in YAML_TYPES:
                request = await _yaml_as_json(request)
            return await handler(request)

        return handle


async def _yaml_as_json(request: Request) -> Request:
    try:
        data = yaml.safe_load(await request.body())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ProblemError(
            400, "MALFORMED_BODY", f"The request body is not valid YAML{where}."
        ) from None
    try:
        body = orjson.dumps(data)
    except TypeError:  # e.g. a YAML date or a non-string key: not a JSON document
        raise ProblemError(400, "MALFORMED_BODY", "The YAML body is not a JSON document.") from None
    headers = [(k, v) for k, v in request.scope["headers"] if k != b"content-type"]
    scope = {**request.scope, "headers": [*headers, (b"content-type", b"application/json")]}
    converted = Request(scope, request.receive)
    converted._body = body  # read once: the original receive channel is spent
    return converted


router = APIRouter(prefix="/v1/workflows", tags=["workflows"], route_class=YamlBodyRoute)

WorkflowId = Annotated[str, Path(**text(orchestrator_pb2.GetWorkflowRequest, "id"))]
# A step event's id: its seq (empty: from the start).
EVENT_ID_PATTERN = r"^([0-9]{1,18})?$"
WorkflowLastEventId = Annotated[
    str,
    Header(
        alias="Last-Event-ID",
        pattern=EVENT_ID_PATTERN,
        description="Resume after this event: the id (its seq) of the last step event received",
    ),
]
_LIST = orchestrator_pb2.ListWorkflowsRequest
_YAML_BODY = {
    "requestBody": {
        "content": {
            media: {"schema": {"$ref": "#/components/schemas/WorkflowCreate"}}
            for media in ("application/yaml",)
        }
    }
}


@router.post(
    "",
    status_code=202,
    response_model=WorkflowOut,
    responses={
        200: {"model": WorkflowOut, "description": "The Idempotency-Key matched"},
        **problems(400, 404, 409, 413, 501),
    },
    openapi_extra=_YAML_BODY,
)
async def submit_workflow(
    body: WorkflowCreate,
    response: Response,
    caller: CallerDep,
    orchestrator: OrchestratorDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> WorkflowOut:
    """Run a workflow, given as JSON or as YAML (`Content-Type: application/yaml`)."""
    spec = convert.workflow_spec(
        body,
        tenant=caller.tenant,
        idempotency_key=idempotency_key or "",
    )
    submitted = await orchestrator.submit_workflow(spec)
    response.status_code = 200 if submitted.existing else 202
    response.headers["Location"] = f"/v1/workflows/{submitted.workflow.id}"
    return convert.workflow_out(submitted.workflow)


@router.get("", responses=problems(403))
async def list_workflows(
    caller: CallerDep,
    orchestrator: OrchestratorDep,
    status: WorkflowStatusName | None = None,
    name: Annotated[str, Query(**text(_LIST, "name"))] = "",
    page_size: Annotated[int, Query(**int_field_bounds(_LIST, "page_size"))] = default(
        _LIST, "page_size"
    ),
    page_token: Annotated[str, Query(**text(_LIST, "page_token"))] = "",
    tenant: TenantFilter = "",
) -> WorkflowList:
    """The caller's workflows, newest first, filtered by status and name."""
    listed = await orchestrator.list_workflows(
        orchestrator_pb2.ListWorkflowsRequest(
            page_size=page_size,
            page_token=page_token,
            tenant=listed_tenant(caller, tenant),
            status=orchestrator_pb2.WorkflowStatus.Value("WORKFLOW_STATUS_" + status.upper())
            if status
            else orchestrator_pb2.WORKFLOW_STATUS_UNSPECIFIED,
            name=name,
        )
    )
    return WorkflowList(
        workflows=[convert.workflow_out(w) for w in listed.workflows],
        next_page_token=listed.next_page_token or None,
    )


@router.get("/{workflow_id}", responses=problems(404))
async def get_workflow(
    workflow_id: WorkflowId, caller: CallerDep, orchestrator: OrchestratorDep
) -> WorkflowOut:
    return convert.workflow_out(await orchestrator.get_workflow(workflow_id, caller.scope))


@router.post("/{workflow_id}/cancel", responses=problems(400, 404, 409, 413))
async def cancel_workflow(
    workflow_id: WorkflowId,
    caller: CallerDep,
    orchestrator: OrchestratorDep,
    body: WorkflowCancel | None = None,
) -> WorkflowOut:
    reason = body.reason if body else ""
    return convert.workflow_out(
        await orchestrator.cancel_workflow(workflow_id, caller.scope, reason)
    )


@router.get(
    "/{workflow_id}/events",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}}, **problems(404)},
)
async def workflow_events(
    workflow_id: WorkflowId,
    request: Request,
    caller: CallerDep,
    orchestrator: OrchestratorDep,
    last_event_id: WorkflowLastEventId = "",
) -> EventSourceResponse:
    """Server-Sent Events: `status` {status}, `step` {step_id, event, data, seq} (id
    `seq`), then `done` with the final workflow. A client that reconnects with
    `Last-Event-ID` gets the workflow status, then only the step events after that one
    (a step status that changed since comes as it is now).
    """
    stream = await orchestrator.watch_workflow(
        watch_request(workflow_id, caller.scope, last_event_id)
    )
    return sse_response(stream, convert.workflow_event, request.url.path, step_event_id)


def watch_request(
    workflow_id: str, tenant: str, last_event_id: str
) -> orchestrator_pb2.WatchWorkflowRequest:
    req = orchestrator_pb2.WatchWorkflowRequest(id=workflow_id, tenant=tenant)
    if last_event_id:
        req.from_seq = int(last_event_id)
    return req


def step_event_id(name: str, data: dict[str, Any]) -> str | None:
    """A step event's SSE id, its seq: what a client resumes from (Last-Event-ID)."""
    return str(data["seq"]) if name == "step" and data.get("seq") else None
