"""Translation between the REST JSON models (`models.py`) and `taskloom.v1` protobuf messages."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf import duration_pb2, json_format, struct_pb2, timestamp_pb2
from pydantic import JsonValue

from taskloom.gateway import models
from taskloom.v1 import common_pb2, orchestrator_pb2

_MAX_SAFE_INT = 2**53


def json_to_value(obj: JsonValue) -> struct_pb2.Value:
    # ParseDict takes any JSON value for a Value message; its stub names only dicts.
    return json_format.ParseDict(obj, struct_pb2.Value())  # type: ignore[arg-type]


def _tidy_numbers(obj: Any) -> Any:
    # protobuf's Value holds only doubles: give back whole numbers as JSON integers.
    if isinstance(obj, float) and obj.is_integer() and abs(obj) <= _MAX_SAFE_INT:
        return int(obj)
    if isinstance(obj, list):
        return [_tidy_numbers(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _tidy_numbers(v) for k, v in obj.items()}
    return obj


def value_to_json(value: struct_pb2.Value) -> JsonValue:
    if value.WhichOneof("kind") is None:
        return None
    return _tidy_numbers(json_format.MessageToDict(value))  # type: ignore[no-any-return]


def _seconds(value: float | None) -> duration_pb2.Duration | None:
    if value is None:
        return None
    d = duration_pb2.Duration()
    d.FromNanoseconds(round(value * 1e9))
    return d


def _duration_out(d: duration_pb2.Duration) -> float | None:
    return d.seconds + d.nanos / 1e9 if (d.seconds or d.nanos) else None


def _time_out(ts: timestamp_pb2.Timestamp) -> datetime | None:
    return ts.ToDatetime(tzinfo=UTC) if (ts.seconds or ts.nanos) else None


def _enum_name(enum: Any, number: int, prefix: str) -> Any:
    if number == 0:
        return None
    try:
        return enum.Name(number).removeprefix(prefix).lower()
    except ValueError:
        return None


def task_status_name(number: int) -> models.TaskStatusName | None:
    return _enum_name(common_pb2.TaskStatus, number, "TASK_STATUS_")  # type: ignore[no-any-return]


def task_status_number(name: str) -> common_pb2.TaskStatus.ValueType:
    return common_pb2.TaskStatus.Value("TASK_STATUS_" + name.upper())


def workflow_status_name(number: int) -> models.WorkflowStatusName | None:
    return _enum_name(orchestrator_pb2.WorkflowStatus, number, "WORKFLOW_STATUS_")  # type: ignore[no-any-return]


def error_reason_name(number: int) -> str:
    try:
        reason = common_pb2.ErrorReason.ValueType(number)
        return common_pb2.ErrorReason.Name(reason).removeprefix("ERROR_REASON_")
    except ValueError:
        return "UNSPECIFIED"


# Durations travel as seconds over REST; the task's retry policy is flattened into it.
_SECONDS = {"timeout", "initial_backoff", "max_backoff"}
_FLATTENED = {"retry.max_attempts": "max_attempts"}


def rest_field_name(grpc_field: str) -> str:
    """The REST name of a field the orchestrator names, as the gateway's own errors spell
    it: `task.timeout` -> `timeout_seconds`, `task.retry.max_attempts` -> `max_attempts`,
    `workflow.steps[2].retry.initial_backoff` -> `steps.2.retry.initial_backoff_seconds`."""
    is_task = grpc_field.startswith("task.")
    for prefix in ("task.", "workflow."):
        grpc_field = grpc_field.removeprefix(prefix)
    if is_task and grpc_field in _FLATTENED:
        return _FLATTENED[grpc_field]
    parts = grpc_field.replace("[", ".").replace("]", "").split(".")
    return ".".join(p + "_seconds" if p in _SECONDS else p for p in parts)


# Tasks.


def task_spec(body: models.TaskCreate, *, tenant: str, idempotency_key: str) -> common_pb2.TaskSpec:
    spec = common_pb2.TaskSpec(
        agent=body.agent,
        input=json_to_value(body.input),
        tenant=tenant,
        priority=body.priority,  # absent stays absent: the orchestrator's default
        labels=dict(body.labels),
        idempotency_key=idempotency_key,
        timeout=_seconds(body.timeout_seconds),
        session_id=body.session_id,
    )
    if body.max_attempts is not None:
        spec.retry.max_attempts = body.max_attempts
    if body.stream is not None:
        # Absent numbers stay absent (the worker's defaults); 0 is a real value.
        spec.stream.CopyFrom(common_pb2.StreamOptions(**body.stream.model_dump(exclude_none=True)))
    return spec


def stream_out(options: common_pb2.StreamOptions) -> models.StreamOptionsOut:
    return models.StreamOptionsOut(
        text_only=options.text_only,
        buffer_size=options.buffer_size if options.HasField("buffer_size") else None,
        flush_interval_ms=(
            options.flush_interval_ms if options.HasField("flush_interval_ms") else None
        ),
    )


def task_error(err: common_pb2.TaskError) -> models.TaskErrorOut | None:
    if not err.reason and not err.message:
        return None
    return models.TaskErrorOut(
        reason=error_reason_name(err.reason), message=err.message, retryable=err.retryable
    )


def task_out(task: common_pb2.Task) -> models.TaskOut:
    return models.TaskOut(
        id=task.id,
        agent=task.agent,
        status=task_status_name(task.status) or "queued",
        input=value_to_json(task.input),
        result=value_to_json(task.result),
        error=task_error(task.error) if task.HasField("error") else None,
        created_at=_time_out(task.created_at),
        started_at=_time_out(task.started_at),
        finished_at=_time_out(task.finished_at),
        attempts=task.attempts,
        max_attempts=task.max_attempts,
        priority=task.priority,
        tenant=task.tenant,
        labels=dict(task.labels),
        idempotency_key=task.idempotency_key or None,
        timeout_seconds=_duration_out(task.timeout),
        usage=models.UsageOut(
            prompt_tokens=task.usage.prompt_tokens,
            completion_tokens=task.usage.completion_tokens,
            cached_completions=task.usage.cached_completions,
            cost_usd=round(task.usage.cost_nano_usd * 1e-9, 9),
            saved_tokens=task.usage.saved_tokens,
            saved_cost_usd=round(task.usage.saved_cost_nano_usd * 1e-9, 9),
        ),
        worker_id=task.worker_id or None,
        workflow_id=task.workflow_id or None,
        step_id=task.step_id or None,
        stream=stream_out(task.stream) if task.HasField("stream") else None,
        session_id=task.session_id or None,
    )


def task_json(task: common_pb2.Task) -> dict[str, Any]:
    return task_out(task).model_dump(mode="json")


def agent_out(agent: common_pb2.AgentInfo) -> models.AgentOut:
    return models.AgentOut(
        name=agent.name,
        description=agent.description,
        provider=agent.provider,
        model=agent.model,
        tools=list(agent.tools),
        limits=models.AgentLimitsOut(
            max_tokens=agent.max_tokens or None,
            max_running=agent.max_running or None,
            provider_max_running=agent.provider_max_running or None,
        ),
    )


_TEXT_KINDS = (common_pb2.CHUNK_KIND_UNSPECIFIED, common_pb2.CHUNK_KIND_TEXT)


def chunk_json(event: orchestrator_pb2.TaskEvent) -> dict[str, Any]:
    """A chunk event's data: {seq, text, attempt}; a chunk that is not answer text (thought,
    tool_call, tool_result, usage, error: taskloom.v1.ChunkKind) adds `kind` (its `text`
    may be empty), and `data` when it has a structured payload."""
    data: dict[str, Any] = {"seq": event.chunk_seq, "text": event.chunk}
    if event.chunk_kind not in _TEXT_KINDS:
        kind = common_pb2.ChunkKind.Name(event.chunk_kind).removeprefix("CHUNK_KIND_")
        data["kind"] = kind.lower()
    if event.HasField("chunk_data"):
        data["data"] = json_format.MessageToDict(event.chunk_data)
    data["attempt"] = event.attempt
    return data


def task_event(event: orchestrator_pb2.TaskEvent) -> tuple[str, dict[str, Any]] | None:
    """A WatchTask event as an (event name, JSON data) pair; None for unknown types."""
    if event.type == orchestrator_pb2.TASK_EVENT_TYPE_STATUS:
        return "status", {"status": task_status_name(event.status)}
    if event.type == orchestrator_pb2.TASK_EVENT_TYPE_CHUNK:
        return "chunk", chunk_json(event)
    if event.type == orchestrator_pb2.TASK_EVENT_TYPE_DONE:
        return "done", task_json(event.task)
    return None


# Workflows.


def _retry(policy: models.RetryPolicyIn | None) -> common_pb2.RetryPolicy | None:
    if policy is None:
        return None
    return common_pb2.RetryPolicy(
        max_attempts=policy.max_attempts,
        initial_backoff=_seconds(policy.initial_backoff_seconds),
        max_backoff=_seconds(policy.max_backoff_seconds),
    )


def workflow_spec(
    body: models.WorkflowCreate, *, tenant: str, idempotency_key: str
) -> orchestrator_pb2.WorkflowSpec:
    return orchestrator_pb2.WorkflowSpec(
        name=body.name,
        mode=orchestrator_pb2.WorkflowMode.Value(
            "WORKFLOW_MODE_" + body.mode.upper() if body.mode else "WORKFLOW_MODE_UNSPECIFIED"
        ),
        steps=[
            orchestrator_pb2.Step(
                id=s.id,
                agent=s.agent,
                input=json_to_value(s.input),
                depends_on=s.depends_on,
                map_over=s.map_over,
                exit_if=s.exit_if,
                retry=_retry(s.retry),
                timeout=_seconds(s.timeout_seconds),
                priority=s.priority,
            )
            for s in body.steps
        ],
        input=json_to_value(body.input),
        failure_policy=orchestrator_pb2.FailurePolicy.Value(
            "FAILURE_POLICY_" + body.failure_policy.upper()
        ),
        tenant=tenant,
        idempotency_key=idempotency_key,
        labels=dict(body.labels),
    )


def _step_json(step: orchestrator_pb2.Step) -> dict[str, JsonValue]:
    return {
        "id": step.id,
        "agent": step.agent,
        "input": value_to_json(step.input),
        "depends_on": list(step.depends_on),
        "map_over": step.map_over,
        "exit_if": step.exit_if,
        "retry": {
            "max_attempts": step.retry.max_attempts,
            "initial_backoff_seconds": _duration_out(step.retry.initial_backoff),
            "max_backoff_seconds": _duration_out(step.retry.max_backoff),
        },
        "timeout_seconds": _duration_out(step.timeout),
        "priority": step.priority,
    }


def workflow_out(wf: orchestrator_pb2.Workflow) -> models.WorkflowOut:
    spec = wf.spec
    return models.WorkflowOut(
        id=wf.id,
        status=workflow_status_name(wf.status),
        spec=models.WorkflowSpecOut(
            name=spec.name,
            mode=_enum_name(orchestrator_pb2.WorkflowMode, spec.mode, "WORKFLOW_MODE_"),
            steps=[_step_json(s) for s in spec.steps],
            input=value_to_json(spec.input),
            failure_policy=_enum_name(
                orchestrator_pb2.FailurePolicy, spec.failure_policy, "FAILURE_POLICY_"
            ),
            tenant=spec.tenant,
            labels=dict(spec.labels),
        ),
        steps=[
            models.StepStateOut(
                step_id=s.step_id,
                status=task_status_name(s.status),
                task_ids=list(s.task_ids),
                output=value_to_json(s.output),
                error=task_error(s.error) if s.HasField("error") else None,
                started_at=_time_out(s.started_at),
                finished_at=_time_out(s.finished_at),
            )
            for s in wf.steps
        ],
        output=value_to_json(wf.output),
        error=task_error(wf.error) if wf.HasField("error") else None,
        created_at=_time_out(wf.created_at),
        finished_at=_time_out(wf.finished_at),
        exited_at_step=wf.exited_at_step or None,
    )


def workflow_event(event: orchestrator_pb2.WorkflowEvent) -> tuple[str, dict[str, Any]]:
    """A WatchWorkflow event as (name, data): `done`, `step` or `status`."""
    if event.done:
        return "done", workflow_out(event.workflow).model_dump(mode="json")
    if event.step_id and event.HasField("task_event"):
        inner = task_event(event.task_event)
        name, data = inner if inner else ("unknown", {})
        return "step", {"step_id": event.step_id, "event": name, "data": data, "seq": event.seq}
    return "status", {"status": workflow_status_name(event.status)}
