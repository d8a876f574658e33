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
    TaskSpec,
    Text,
    WorkflowSpec,
    bounded_text,
    count,
    default,
    int_range,
    json_value,
    labels_type,
    seconds,
    text,
)
from taskloom.v1 import orchestrator_pb2

TaskStatusName = Literal["queued", "running", "succeeded", "failed", "cancelled", "timed_out"]
WorkflowStatusName = Literal["running", "succeeded", "failed", "cancelled", "timed_out"]
WorkflowModeName = Literal["sequential", "parallel", "dag"]
FailurePolicyName = Literal["fail_fast", "continue"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Tasks.


_PRIORITY = (
    f"{int_range(TaskSpec, 'priority')['ge']} (lowest) to {int_range(TaskSpec, 'priority')['le']}"
    f" (highest); absent: {default(TaskSpec, 'priority')}"
)


class TaskCreate(_Strict):
    agent: Text = Field(description="Name of the agent to run", **text(TaskSpec, "agent"))
    input: json_value(TaskSpec, "input") = Field(  # type: ignore[valid-type]
        None, description="Any JSON value handed to the agent"
    )
    priority: int | None = Field(None, description=_PRIORITY, **int_range(TaskSpec, "priority"))
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
        **int_range(RetryPolicy, "max_attempts"),
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


class TaskList(BaseModel):
    tasks: list[TaskOut]
    next_page_token: str | None = None


class AgentOut(BaseModel):
    name: str
    description: str
    provider: str
    model: str
    tools: list[str]


class AgentList(BaseModel):
    agents: list[AgentOut]


# Workflows.


class RetryPolicyIn(_Strict):
    max_attempts: int = Field(0, **int_range(RetryPolicy, "max_attempts"))
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
    priority: int | None = Field(None, description=_PRIORITY, **int_range(Step, "priority"))


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


# Health.


class Health(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)
