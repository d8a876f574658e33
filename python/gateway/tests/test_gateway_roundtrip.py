"""Every field of a task and a workflow goes through the gateway's mappers (REST model <->
proto): a field added on either side and not mapped fails here (docs/adding-a-task-field.md)."""

from __future__ import annotations

from typing import Any, TypeVar

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from taskloom.gateway import convert, models
from taskloom.v1 import common_pb2, orchestrator_pb2

# REST names of proto fields that differ (durations travel as seconds).
M = TypeVar("M", bound=Message)
RENAMED = {"timeout": "timeout_seconds"}


def fill(msg: M) -> M:
    """Set every field of msg, recursively, to a valid value that is not its default."""
    for field in msg.DESCRIPTOR.fields:
        name = field.name
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            getattr(msg, name)["k"] = "v"
        elif field.message_type is not None:
            full = field.message_type.full_name
            target = getattr(msg, name).add() if _repeated(field) else getattr(msg, name)
            if full == "google.protobuf.Duration":
                target.FromSeconds(3)
            elif full == "google.protobuf.Timestamp":
                target.FromSeconds(1_767_000_000)
            elif full == "google.protobuf.Value":
                target.string_value = "v"
            else:
                fill(target)
        else:
            value = _scalar(field)
            if _repeated(field):
                getattr(msg, name).append(value)
            else:
                setattr(msg, name, value)
    return msg


def _repeated(field: Any) -> bool:
    return bool(field.is_repeated)


def _scalar(field: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_STRING:
        return f"s-{field.name}"
    if field.type == FieldDescriptor.TYPE_BOOL:
        return True
    return 1 if field.type == FieldDescriptor.TYPE_ENUM else 2


def _unset(msg: Message, prefix: str = "") -> list[str]:
    out = []
    for field in msg.DESCRIPTOR.fields:
        value = getattr(msg, field.name)
        present = (
            msg.HasField(field.name)
            if field.has_presence and not _repeated(field)
            else (len(value) if _repeated(field) else value not in ("", 0, False))
        )
        if not present:
            out.append(prefix + field.name)
    return out


def test_every_rest_task_field_reaches_the_task_spec() -> None:
    body = models.TaskCreate(
        agent="a",
        input={"q": 1},
        priority=0,
        labels={"k": "v"},
        timeout_seconds=1.5,
        max_attempts=2,
        stream=models.StreamOptionsIn(text_only=True, buffer_size=0, flush_interval_ms=40),
        session_id="chat-1",
    )
    assert not [k for k, v in body.model_dump().items() if v in (None, {}, "")]
    spec = convert.task_spec(body, tenant="t", idempotency_key="key")
    assert _unset(spec) == []
    assert _unset(spec.stream) == []  # 0 is a real buffer size, kept as present
    assert spec.retry.max_attempts == 2
    # What REST cannot set: the retry backoffs of a single task (a workflow step can).
    assert _unset(spec.retry) == ["initial_backoff", "max_backoff"]


def test_every_task_field_reaches_rest() -> None:
    task = fill(common_pb2.Task())
    out = convert.task_out(task).model_dump()
    proto_names = {RENAMED.get(f.name, f.name) for f in common_pb2.Task.DESCRIPTOR.fields}
    assert proto_names == set(out), "a Task field has no REST counterpart, or the reverse"
    assert [k for k, v in out.items() if v in (None, {}, [], "")] == []
    stream_names = {f.name for f in common_pb2.StreamOptions.DESCRIPTOR.fields}
    assert stream_names == set(out["stream"])
    assert None not in out["stream"].values()


def test_every_rest_workflow_field_reaches_the_workflow_spec() -> None:
    step = models.StepIn(
        id="s",
        agent="a",
        input="x",
        depends_on=["r"],
        map_over="{{ input.items }}",
        exit_if="{{ output.done }}",
        retry=models.RetryPolicyIn(
            max_attempts=2, initial_backoff_seconds=1, max_backoff_seconds=2
        ),
        timeout_seconds=3,
        priority=0,
    )
    body = models.WorkflowCreate(
        name="n", mode="dag", steps=[step], input={"items": [1]}, labels={"k": "v"}
    )
    spec = convert.workflow_spec(body, tenant="t", idempotency_key="key")
    assert _unset(spec) == []
    assert _unset(spec.steps[0]) == []
    assert _unset(spec.steps[0].retry) == []


def test_every_workflow_field_reaches_rest() -> None:
    wf = fill(orchestrator_pb2.Workflow())
    out = convert.workflow_out(wf).model_dump()
    assert {f.name for f in orchestrator_pb2.Workflow.DESCRIPTOR.fields} == set(out)
    assert [k for k, v in out.items() if v in (None, [], "")] == []
    step = out["spec"]["steps"][0]
    assert {RENAMED.get(f.name, f.name) for f in orchestrator_pb2.Step.DESCRIPTOR.fields} == set(
        step
    )
    spec_names = {f.name for f in orchestrator_pb2.WorkflowSpec.DESCRIPTOR.fields}
    # The idempotency key of a workflow is the client's header, not echoed in the body.
    assert spec_names - {"idempotency_key"} == set(out["spec"])
    state = out["steps"][0]
    assert {f.name for f in orchestrator_pb2.StepState.DESCRIPTOR.fields} == set(state)
