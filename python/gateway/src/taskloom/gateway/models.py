"""JSON shapes of the REST API (request bodies and responses), as pydantic models.

They mirror `taskloom.v1` messages in snake_case with lowercase enum names; `convert.py`
translates between them and protobuf. Every bound on a request field comes from the limits
the contracts declare (`limits.py`), never from a number written here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from taskloom.gateway.limits import (
    RetryPolicy,
    Step,
    StreamOptions,
    TaskSpec,
    Text,
    WorkflowSpec,
    bounded_text,
    count,
    default,
    int_field_bounds,
    json_value,
    labels_type,
    seconds,
    text,
)
from taskloom.sdk import collections
from taskloom.v1 import orchestrator_pb2

TaskStatusName = Literal["queued", "running", "succeeded", "failed", "cancelled", "timed_out"]
WorkflowStatusName = Literal["running", "succeeded", "failed", "cancelled", "timed_out"]
WorkflowModeName = Literal["sequential", "parallel", "dag"]
FailurePolicyName = Literal["fail_fast", "continue"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Tasks.


_PRIORITY_BOUNDS = int_field_bounds(TaskSpec, "priority")
_PRIORITY = (
    f"{_PRIORITY_BOUNDS['ge']} (lowest) to {_PRIORITY_BOUNDS['le']}"
    f" (highest); absent: {default(TaskSpec, 'priority')}"
)


class StreamOptionsIn(_Strict):
    text_only: bool = Field(
        False, description="Only the answer's text: no thought, tool or usage chunks"
    )
    buffer_size: int | None = Field(
        None,
        description="Text is sent once this many bytes are buffered; 0: every piece as it "
        "comes; absent: the worker's default",
        **int_field_bounds(StreamOptions, "buffer_size"),
    )
    flush_interval_ms: int | None = Field(
        None,
        description="...or once the first buffered piece is this old; 0: every piece as it "
        "comes; absent: the worker's default",
        **int_field_bounds(StreamOptions, "flush_interval_ms"),
    )


class TaskCreate(_Strict):
    agent: Text = Field(description="Name of the agent to run", **text(TaskSpec, "agent"))
    input: json_value(TaskSpec, "input") = Field(  # type: ignore[valid-type]
        None, description="Any JSON value handed to the agent"
    )
    priority: int | None = Field(
        None, description=_PRIORITY, **int_field_bounds(TaskSpec, "priority")
    )
    labels: labels_type(TaskSpec, "labels") = Field(  # type: ignore[valid-type]
        default_factory=dict, **count(TaskSpec, "labels")
    )
    timeout_seconds: float | None = Field(
        None,
        description="Time allowed for one attempt; 0 or absent: the orchestrator's default",
        **seconds(TaskSpec, "timeout"),
    )
    max_attempts: int | None = Field(
        None,
        description="Attempts in all; 0 or absent: the orchestrator's default",
        **int_field_bounds(RetryPolicy, "max_attempts"),
    )
    stream: StreamOptionsIn | None = Field(
        None, description="How the worker streams the task's output; absent: its defaults"
    )
    session_id: Text = Field(
        "",
        description="Continue this conversation: the agent sees the session's earlier turns "
        "(GET and DELETE /v1/sessions/{id}); empty: none",
        **text(TaskSpec, "session_id"),
    )


class TaskBatchItem(TaskCreate):
    idempotency_key: Text | None = Field(
        None,
        description="Retrying the batch with the same key returns this item's first task",
        **text(TaskSpec, "idempotency_key"),
    )


class TaskBatchCreate(_Strict):
    tasks: list[TaskBatchItem] = Field(
        description="Queued all or none", **count(orchestrator_pb2.SubmitTasksRequest, "tasks")
    )


class TaskCancel(_Strict):
    reason: Text = Field("", **text(orchestrator_pb2.CancelTaskRequest, "reason"))


class TaskErrorOut(BaseModel):
    reason: str
    message: str
    retryable: bool = False


class UsageOut(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_completions: int = 0
    # At the workers' configured prices; tokens of unpriced models cost nothing here.
    cost_usd: float = 0.0
    saved_tokens: int = 0
    saved_cost_usd: float = 0.0


class StreamOptionsOut(BaseModel):
    text_only: bool = False
    buffer_size: int | None = None
    flush_interval_ms: int | None = None


class TaskOut(BaseModel):
    id: str
    agent: str
    status: TaskStatusName
    input: JsonValue = None
    result: JsonValue = None
    error: TaskErrorOut | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    attempts: int = 0
    max_attempts: int = 0
    priority: int = 0
    tenant: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    idempotency_key: str | None = None
    timeout_seconds: float | None = None
    usage: UsageOut = Field(default_factory=UsageOut)
    worker_id: str | None = None
    workflow_id: str | None = None
    step_id: str | None = None
    stream: StreamOptionsOut | None = None
    session_id: str | None = None


class TaskList(BaseModel):
    tasks: list[TaskOut]
    next_page_token: str | None = None


class TaskBatch(BaseModel):
    tasks: list[TaskOut]


class AgentLimitsOut(BaseModel):
    max_tokens: int | None = Field(None, description="Most tokens of one model completion")
    max_running: int | None = Field(
        None, description="The orchestrator's cap on this agent's tasks running at once"
    )
    provider_max_running: int | None = Field(
        None, description="The orchestrator's cap on the tasks of its provider running at once"
    )


class AgentOut(BaseModel):
    name: str
    description: str
    provider: str
    model: str
    tools: list[str]
    limits: AgentLimitsOut = Field(default_factory=AgentLimitsOut)


class AgentList(BaseModel):
    agents: list[AgentOut]


# Workflows.


class RetryPolicyIn(_Strict):
    max_attempts: int = Field(0, **int_field_bounds(RetryPolicy, "max_attempts"))
    initial_backoff_seconds: float | None = Field(None, **seconds(RetryPolicy, "initial_backoff"))
    max_backoff_seconds: float | None = Field(None, **seconds(RetryPolicy, "max_backoff"))


class StepIn(_Strict):
    id: Text = Field(**text(Step, "id"))
    agent: Text = Field(**text(Step, "agent"))
    input: json_value(Step, "input") = None  # type: ignore[valid-type]
    depends_on: list[bounded_text(Step, "depends_on")] = Field(  # type: ignore[valid-type]
        default_factory=list, **count(Step, "depends_on")
    )
    map_over: Text = Field("", **text(Step, "map_over"))
    exit_if: Text = Field("", **text(Step, "exit_if"))
    retry: RetryPolicyIn | None = None
    timeout_seconds: float | None = Field(None, **seconds(Step, "timeout"))
    priority: int | None = Field(None, description=_PRIORITY, **int_field_bounds(Step, "priority"))


class WorkflowCreate(_Strict):
    name: Text = Field("", **text(WorkflowSpec, "name"))
    mode: WorkflowModeName | None = Field(
        None, description="Default: dag when any step has depends_on, else sequential"
    )
    steps: list[StepIn] = Field(**count(WorkflowSpec, "steps"))
    input: json_value(WorkflowSpec, "input") = None  # type: ignore[valid-type]
    failure_policy: FailurePolicyName = "fail_fast"
    labels: labels_type(WorkflowSpec, "labels") = Field(  # type: ignore[valid-type]
        default_factory=dict, **count(WorkflowSpec, "labels")
    )


class WorkflowCancel(TaskCancel):
    pass


class StepStateOut(BaseModel):
    step_id: str
    status: TaskStatusName | None = None
    task_ids: list[str] = Field(default_factory=list)
    output: JsonValue = None
    error: TaskErrorOut | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class WorkflowSpecOut(BaseModel):
    name: str
    mode: WorkflowModeName | None = None
    steps: list[dict[str, JsonValue]]
    input: JsonValue = None
    failure_policy: FailurePolicyName | None = None
    tenant: str = ""
    labels: dict[str, str] = Field(default_factory=dict)


class WorkflowOut(BaseModel):
    id: str
    status: WorkflowStatusName | None = None
    spec: WorkflowSpecOut
    steps: list[StepStateOut]
    output: JsonValue = None
    error: TaskErrorOut | None = None
    created_at: datetime | None = None
    finished_at: datetime | None = None
    exited_at_step: str | None = None


class WorkflowList(BaseModel):
    workflows: list[WorkflowOut]
    next_page_token: str | None = None


# Health.


class Health(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)


# Sessions.


class SessionMessageOut(BaseModel):
    role: str
    content: str


class SessionOut(BaseModel):
    session_id: str
    messages: list[SessionMessageOut]
    expires_in_seconds: float | None = Field(
        None, description="time left before the session expires; absent: never"
    )


# Collections (documents for the `rag` tool).


class CollectionCreate(_Strict):
    name: str = Field(description=f"the collection's name: {collections.NAME_RULE}")


class CollectionOut(BaseModel):
    name: str
    dimension: int
    chunks: int


class CollectionList(BaseModel):
    collections: list[CollectionOut]


class DocumentCreate(_Strict):
    text: str = Field(description="the document's text; chunked and embedded by Taskloom")
    id: str = Field(
        "",
        max_length=128,
        pattern=r"^[A-Za-z0-9_.-]*$",
        description="the document's id (a new one when absent); the same id replaces its chunks",
    )
    metadata: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="kept with each chunk and returned by searches"
    )


class DocumentOut(BaseModel):
    document_id: str
    chunks: int


class CollectionSearch(_Strict):
    query: str = Field("", description="text to search for (embedded by Taskloom)")
    vector: list[float] = Field(
        default_factory=list, description="or a vector of the collection's dimension"
    )
    top_k: int = Field(5, ge=1, le=collections.MAX_TOP_K)


class HitOut(BaseModel):
    text: str
    score: float
    document_id: str
    chunk: int
    metadata: dict[str, JsonValue] = Field(default_factory=dict)


class SearchOut(BaseModel):
    hits: list[HitOut]
