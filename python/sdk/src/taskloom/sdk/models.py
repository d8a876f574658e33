"""Typed views of what the REST gateway answers: tasks, workflows, agents and pages of
them. Unknown fields are kept (a newer gateway may add some); a test holds the field names
to the gateway's OpenAPI document."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled", "timed_out"})


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class TaskError(_Model):
    reason: str
    message: str
    retryable: bool = False


class Usage(_Model):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_completions: int = 0
    # At the workers' configured prices; tokens of unpriced models cost nothing here.
    cost_usd: float = 0.0
    saved_tokens: int = 0
    saved_cost_usd: float = 0.0


class StreamOptions(_Model):
    """How a task's stream is coalesced (taskloom.v1.StreamOptions); absent: the worker's."""

    text_only: bool = False
    buffer_size: int | None = None
    flush_interval_ms: int | None = None


class Task(_Model):
    id: str
    agent: str
    status: str
    input: Any = None
    result: Any = None
    error: TaskError | None = None
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
    usage: Usage = Field(default_factory=Usage)
    worker_id: str | None = None
    workflow_id: str | None = None
    step_id: str | None = None
    stream: StreamOptions | None = None
    session_id: str | None = None

    @property
    def done(self) -> bool:
        return self.status in TERMINAL_STATUSES


class TaskPage(_Model):
    tasks: list[Task]
    next_page_token: str | None = None


class StepState(_Model):
    step_id: str
    status: str | None = None
    task_ids: list[str] = Field(default_factory=list)
    output: Any = None
    error: TaskError | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class WorkflowSpec(_Model):
    name: str
    mode: str | None = None
    steps: list[dict[str, Any]]
    input: Any = None
    failure_policy: str | None = None
    tenant: str = ""
    labels: dict[str, str] = Field(default_factory=dict)


class Workflow(_Model):
    id: str
    status: str | None = None
    spec: WorkflowSpec
    steps: list[StepState]
    output: Any = None
    error: TaskError | None = None
    created_at: datetime | None = None
    finished_at: datetime | None = None
    exited_at_step: str | None = None

    @property
    def done(self) -> bool:
        return self.status in TERMINAL_STATUSES


class WorkflowPage(_Model):
    workflows: list[Workflow]
    next_page_token: str | None = None


class AgentLimits(_Model):
    max_tokens: int | None = None
    max_running: int | None = None
    provider_max_running: int | None = None


class Agent(_Model):
    name: str
    description: str
    provider: str
    model: str
    tools: list[str]
    limits: AgentLimits = Field(default_factory=AgentLimits)


class TaskRequest(_Model):
    """One task of a batch (`submit_tasks`); the SDK gives it an idempotency key if none."""

    agent: str
    input: Any = None
    priority: int | None = None
    labels: dict[str, str] | None = None
    timeout_seconds: float | None = None
    max_attempts: int | None = None
    idempotency_key: str | None = None
    stream: StreamOptions | None = None
    session_id: str | None = None
