"""JSON shapes of the REST API (request bodies and responses), as pydantic models.

They mirror `taskloom.v1` messages in snake_case with lowercase enum names; `convert.py`
translates between them and protobuf.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

TaskStatusName = Literal["queued", "running", "succeeded", "failed", "cancelled", "timed_out"]
WorkflowStatusName = Literal["running", "succeeded", "failed", "cancelled", "timed_out"]
WorkflowModeName = Literal["sequential", "parallel", "dag"]
FailurePolicyName = Literal["fail_fast", "continue"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Tasks.


class TaskCreate(_Strict):
    agent: str = Field(min_length=1, description="Name of the agent to run")
    input: JsonValue = Field(None, description="Any JSON value handed to the agent")
    priority: int = Field(5, ge=0, le=9, description="0 (lowest) to 9 (highest)")
    labels: dict[str, str] = Field(default_factory=dict)
    timeout_seconds: float | None = Field(None, gt=0, description="Time allowed for one attempt")
    max_attempts: int | None = Field(None, ge=1, le=100, description="Attempts in all")


class TaskCancel(_Strict):
    reason: str = Field("", max_length=1000)


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
    max_attempts: int = Field(0, ge=0, le=100)
    initial_backoff_seconds: float | None = Field(None, ge=0)
    max_backoff_seconds: float | None = Field(None, ge=0)


class StepIn(_Strict):
    id: str = Field(min_length=1)
    agent: str = Field(min_length=1)
    input: JsonValue = None
    depends_on: list[str] = Field(default_factory=list)
    map_over: str = ""
    exit_if: str = ""
    retry: RetryPolicyIn | None = None
    timeout_seconds: float | None = Field(None, gt=0)
    priority: int = Field(5, ge=0, le=9)


class WorkflowCreate(_Strict):
    name: str = ""
    mode: WorkflowModeName | None = Field(
        None, description="Default: dag when any step has depends_on, else sequential"
    )
    steps: list[StepIn] = Field(min_length=1)
    input: JsonValue = None
    failure_policy: FailurePolicyName = "fail_fast"
    labels: dict[str, str] = Field(default_factory=dict)


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
