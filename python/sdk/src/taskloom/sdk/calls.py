"""Each REST operation of the gateway as data (method, path, body, how to read the answer),
so that the synchronous and the asynchronous clients send exactly the same requests."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import httpx
from pydantic import TypeAdapter

from taskloom.sdk.models import Agent, Task, TaskPage, TaskRequest, Workflow, WorkflowPage

T = TypeVar("T")


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    read: Callable[[httpx.Response], T]
    params: dict[str, Any] = field(default_factory=dict)
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # Sending it twice does what sending it once does (an idempotency key names the work).
    idempotent: bool = False

    @property
    def repeatable(self) -> bool:
        return self.method == "GET" or self.idempotent

    def request_args(self) -> dict[str, Any]:
        args: dict[str, Any] = {"headers": self.headers}
        if self.params:
            args["params"] = self.params
        if self.content is not None:
            args["content"] = self.content
        elif self.json is not None:
            args["json"] = self.json
        return args


def _model(cls: type[T]) -> Callable[[httpx.Response], T]:
    adapter = TypeAdapter(cls)
    return lambda resp: adapter.validate_json(resp.content)


def _present(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def new_idempotency_key() -> str:
    """A fresh key: with it a retried submit returns the task the first attempt queued."""
    return f"sdk-{uuid.uuid4()}"


def submit_task(request: TaskRequest) -> Call[Task]:
    key = request.idempotency_key or new_idempotency_key()
    body = request.model_dump(exclude_none=True, exclude={"idempotency_key"})
    return Call(
        "POST",
        "/v1/tasks",
        _model(Task),
        json=body,
        headers={"Idempotency-Key": key},
        idempotent=True,
    )


def submit_tasks(requests: Iterable[TaskRequest]) -> Call[list[Task]]:
    items = [
        {
            **r.model_dump(exclude_none=True),
            "idempotency_key": r.idempotency_key or new_idempotency_key(),
        }
        for r in requests
    ]
    # Every item has a key, so the whole batch may be sent again.
    read = TypeAdapter(list[Task])
    return Call(
        "POST",
        "/v1/tasks:batch",
        lambda resp: read.validate_python(resp.json()["tasks"]),
        json={"tasks": items},
        idempotent=True,
    )


def get_task(task_id: str) -> Call[Task]:
    return Call("GET", f"/v1/tasks/{task_id}", _model(Task))


def list_tasks(**filters: Any) -> Call[TaskPage]:
    return Call("GET", "/v1/tasks", _model(TaskPage), params=_present(filters))


def cancel_task(task_id: str, reason: str) -> Call[Task]:
    return Call("POST", f"/v1/tasks/{task_id}/cancel", _model(Task), json={"reason": reason})


def list_agents() -> Call[list[Agent]]:
    read = TypeAdapter(list[Agent])
    return Call("GET", "/v1/agents", lambda resp: read.validate_python(resp.json()["agents"]))


def get_agent(name: str) -> Call[Agent]:
    return Call("GET", f"/v1/agents/{name}", _model(Agent))


def submit_workflow(spec: Mapping[str, Any] | str, idempotency_key: str | None) -> Call[Workflow]:
    """A workflow as a mapping (sent as JSON) or as YAML text (sent as application/yaml)."""
    headers = {"Idempotency-Key": idempotency_key or new_idempotency_key()}
    if isinstance(spec, str):
        headers["Content-Type"] = "application/yaml"
        return Call(
            "POST",
            "/v1/workflows",
            _model(Workflow),
            content=spec.encode(),
            headers=headers,
            idempotent=True,
        )
    return Call(
        "POST", "/v1/workflows", _model(Workflow), json=dict(spec), headers=headers, idempotent=True
    )


def get_workflow(workflow_id: str) -> Call[Workflow]:
    return Call("GET", f"/v1/workflows/{workflow_id}", _model(Workflow))


def list_workflows(**filters: Any) -> Call[WorkflowPage]:
    return Call("GET", "/v1/workflows", _model(WorkflowPage), params=_present(filters))


def cancel_workflow(workflow_id: str, reason: str) -> Call[Workflow]:
    return Call(
        "POST", f"/v1/workflows/{workflow_id}/cancel", _model(Workflow), json={"reason": reason}
    )


def get_session(session_id: str) -> Call[dict[str, Any]]:
    return Call("GET", f"/v1/sessions/{session_id}", _model(dict[str, Any]))


def delete_session(session_id: str) -> Call[None]:
    # Forgetting a session twice forgets it once.
    return Call("DELETE", f"/v1/sessions/{session_id}", lambda resp: None, idempotent=True)
