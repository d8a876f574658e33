"""The REST API applies the limits the contracts declare, and says so: the same bounds as the
proto's table, in the OpenAPI schema, in 422s naming the field, in 413 for a large body."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import grpc
import pytest
from fastapi.testclient import TestClient
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from taskloom.gateway import convert, limits, models
from taskloom.gateway.errors import problem_from_grpc
from taskloom.sdk.proto_limits import field_limits
from taskloom.v1 import common_pb2, orchestrator_pb2

PROBLEM = "application/problem+json"
README = Path(__file__).resolve().parents[3] / "README.md"

TaskSpec, RetryPolicy = common_pb2.TaskSpec, common_pb2.RetryPolicy
Step, WorkflowSpec = orchestrator_pb2.Step, orchestrator_pb2.WorkflowSpec

# Where each limited field of a request reaches REST: (model, property), or None where REST
# never lets a client set it (the tenant comes from the API key).
REST_FIELDS: dict[tuple[str, str], tuple[type, str] | None] = {
    ("TaskSpec", "agent"): (models.TaskCreate, "agent"),
    ("TaskSpec", "input"): (models.TaskCreate, "input"),
    ("TaskSpec", "tenant"): None,
    ("TaskSpec", "priority"): (models.TaskCreate, "priority"),
    ("TaskSpec", "labels"): (models.TaskCreate, "labels"),
    ("TaskSpec", "idempotency_key"): None,
    ("TaskSpec", "session_id"): (
        models.TaskCreate,
        "session_id",
    ),  # the Idempotency-Key header: see its own test
    ("TaskSpec", "timeout"): (models.TaskCreate, "timeout_seconds"),
    ("RetryPolicy", "max_attempts"): (models.RetryPolicyIn, "max_attempts"),
    ("RetryPolicy", "initial_backoff"): (models.RetryPolicyIn, "initial_backoff_seconds"),
    ("RetryPolicy", "max_backoff"): (models.RetryPolicyIn, "max_backoff_seconds"),
    ("Step", "id"): (models.StepIn, "id"),
    ("Step", "agent"): (models.StepIn, "agent"),
    ("Step", "input"): (models.StepIn, "input"),
    ("Step", "depends_on"): (models.StepIn, "depends_on"),
    ("Step", "map_over"): (models.StepIn, "map_over"),
    ("Step", "exit_if"): (models.StepIn, "exit_if"),
    ("Step", "timeout"): (models.StepIn, "timeout_seconds"),
    ("Step", "priority"): (models.StepIn, "priority"),
    ("WorkflowSpec", "name"): (models.WorkflowCreate, "name"),
    ("WorkflowSpec", "steps"): (models.WorkflowCreate, "steps"),
    ("WorkflowSpec", "input"): (models.WorkflowCreate, "input"),
    ("WorkflowSpec", "tenant"): None,
    ("WorkflowSpec", "idempotency_key"): None,
    ("WorkflowSpec", "labels"): (models.WorkflowCreate, "labels"),
    ("CancelTaskRequest", "id"): None,  # path parameters: see the OpenAPI test
    ("CancelWorkflowRequest", "id"): None,
    ("CancelTaskRequest", "reason"): (models.TaskCancel, "reason"),
    ("CancelWorkflowRequest", "reason"): (models.WorkflowCancel, "reason"),
    ("CancelTaskRequest", "tenant"): None,
    ("CancelWorkflowRequest", "tenant"): None,
    ("SubmitTasksRequest", "tasks"): (models.TaskBatchCreate, "tasks"),
}
# RetryPolicy.max_attempts also reaches REST flattened into a task.
FLATTENED = {("RetryPolicy", "max_attempts"): (models.TaskCreate, "max_attempts")}


def _declared() -> dict[tuple[str, str], Any]:
    out = {}
    for desc in (
        TaskSpec.DESCRIPTOR,
        RetryPolicy.DESCRIPTOR,
        Step.DESCRIPTOR,
        WorkflowSpec.DESCRIPTOR,
        orchestrator_pb2.CancelTaskRequest.DESCRIPTOR,
        orchestrator_pb2.CancelWorkflowRequest.DESCRIPTOR,
        orchestrator_pb2.SubmitTasksRequest.DESCRIPTOR,
    ):
        for field in desc.fields:
            lim = field_limits(desc, field.name)
            if lim.ByteSize():
                out[(desc.name, field.name)] = lim
    return out


def _schema_of(model: type, prop: str) -> dict[str, Any]:
    schema = model.model_json_schema()  # type: ignore[attr-defined]
    node = schema["properties"][prop]
    for option in node.get("anyOf", [node]):
        if option.get("type") != "null":
            return {**node, **option}
    return dict(node)


def _expected(lim: Any) -> dict[str, Any]:
    want: dict[str, Any] = {}
    if lim.max_len:
        want["maxLength"] = lim.max_len
    if lim.min_len:
        want["minLength"] = lim.min_len
    if lim.max_items:
        want["maxItems"] = lim.max_items
    if lim.min_items:
        want["minItems"] = lim.min_items
    if lim.HasField("max"):
        want["maximum"] = lim.max
    if lim.HasField("min"):
        want["minimum"] = lim.min
    if lim.max_seconds:
        want |= {"minimum": 0, "maximum": lim.max_seconds}
    if lim.max_bytes:
        want["x-max-encoded-bytes"] = lim.max_bytes
    return want


def _applied(schema: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("maxLength", "minLength", "maximum", "minimum", "x-max-encoded-bytes"):
        if key in schema:
            out[key] = schema[key]
    if schema.get("type") == "array":
        out |= {k: schema[k] for k in ("maxItems", "minItems") if k in schema}
        item = schema.get("items", {})
        out |= {k: item[k] for k in ("maxLength", "minLength") if k in item}
    if schema.get("type") == "object":
        out |= {"maxItems": schema["maxProperties"]} if "maxProperties" in schema else {}
    return out


def test_the_rest_models_apply_the_table_the_proto_declares() -> None:
    declared = _declared()
    assert set(declared) == set(REST_FIELDS), "a limited field has no REST mapping here"
    for key, lim in declared.items():
        for target in (REST_FIELDS[key], FLATTENED.get(key)):
            if target is None:
                continue
            model, prop = target
            assert _applied(_schema_of(model, prop)) == _expected(lim), (key, model, prop)
    labels = _schema_of(models.TaskCreate, "labels")
    lim = declared[("TaskSpec", "labels")]
    assert labels["propertyNames"] == {"minLength": lim.min_key_len, "maxLength": lim.max_key_len}
    assert labels["additionalProperties"]["maxLength"] == lim.max_value_len


def test_the_openapi_schema_shows_the_limits(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    task = spec["components"]["schemas"]["TaskCreate"]["properties"]
    assert task["agent"]["maxLength"] == field_limits(TaskSpec, "agent").max_len
    assert task["priority"]["description"].endswith("absent: 5")
    for path, method, name, request in [
        ("/v1/tasks/{task_id}", "get", "task_id", orchestrator_pb2.GetTaskRequest),
        ("/v1/tasks/{task_id}/cancel", "post", "task_id", orchestrator_pb2.CancelTaskRequest),
        ("/v1/workflows/{workflow_id}", "get", "workflow_id", orchestrator_pb2.GetWorkflowRequest),
        (
            "/v1/workflows/{workflow_id}/cancel",
            "post",
            "workflow_id",
            orchestrator_pb2.CancelWorkflowRequest,
        ),
    ]:
        params = {p["name"]: p for p in spec["paths"][path][method]["parameters"]}
        assert params[name]["schema"]["maxLength"] == field_limits(request, "id").max_len
    header = {
        p["name"]: p
        for p in spec["paths"]["/v1/tasks"]["post"]["parameters"]
        if p["in"] == "header"
    }
    assert header["Idempotency-Key"]["schema"]["anyOf"][0]["maxLength"] == (
        field_limits(TaskSpec, "idempotency_key").max_len
    )


def test_priority_absent_stays_absent_and_zero_is_sent() -> None:
    absent = convert.task_spec(models.TaskCreate(agent="a"), tenant="t", idempotency_key="")
    zero = convert.task_spec(
        models.TaskCreate(agent="a", priority=0), tenant="t", idempotency_key=""
    )
    assert not absent.HasField("priority")
    assert zero.HasField("priority") and zero.priority == 0
    wf = convert.workflow_spec(
        models.WorkflowCreate(steps=[models.StepIn(id="s", agent="a")]),
        tenant="t",
        idempotency_key="",
    )
    assert not wf.steps[0].HasField("priority")


@pytest.mark.parametrize(
    ("body", "field", "bound"),
    [
        ({"agent": "echo", "timeout_seconds": 1e300}, "timeout_seconds", "86400"),
        ({"agent": "echo", "timeout_seconds": 1e17}, "timeout_seconds", "86400"),
        ({"agent": "echo", "priority": 12}, "priority", "9"),
        ({"agent": "echo", "labels": {"": "v"}}, "labels.[key]", "1 character"),
    ],
)
def test_bad_task_fields_are_422_naming_the_field_and_the_bound(
    client: TestClient, body: dict[str, Any], field: str, bound: str
) -> None:
    resp = client.post("/v1/tasks", json=body)
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"] == PROBLEM
    errors = resp.json()["errors"]
    assert errors[0]["field"] == field and bound in errors[0]["message"], errors


@pytest.mark.parametrize(
    ("step", "field"),
    [
        ({"timeout_seconds": 1e308}, "steps.0.timeout_seconds"),
        ({"retry": {"initial_backoff_seconds": 1e308}}, "steps.0.retry.initial_backoff_seconds"),
        ({"priority": -1}, "steps.0.priority"),
    ],
)
def test_bad_step_fields_are_422_naming_the_field(
    client: TestClient, step: dict[str, Any], field: str
) -> None:
    resp = client.post("/v1/workflows", json={"steps": [{"id": "a", "agent": "echo", **step}]})
    assert resp.status_code == 422, resp.text
    assert [e["field"] for e in resp.json()["errors"]] == [field]


def test_text_that_is_not_unicode_is_422_not_500(client: TestClient) -> None:
    resp = client.post(
        "/v1/tasks",
        content=b'{"agent": "echo", "input": {"q": "\\ud800"}, "labels": {"k": "\\udfff"}}',
        headers={"content-type": "application/json"},
    )
    assert resp.status_code == 422, resp.text
    assert {e["field"] for e in resp.json()["errors"]} == {"input", "labels.k"}


def test_a_long_id_is_422_and_nothing_echoes_it(client: TestClient) -> None:
    long_id = "x" * 7000
    for resp in (
        client.get(f"/v1/tasks/{long_id}"),
        client.post(f"/v1/tasks/{long_id}/cancel"),
        client.get(f"/v1/workflows/{long_id}"),
    ):
        assert resp.status_code == 422, resp.text
        assert resp.headers["content-type"] == PROBLEM
        assert len(resp.text) < 1000, "the problem echoes the id"


def test_a_body_over_the_request_bound_is_413(client: TestClient) -> None:
    big = {"agent": "echo", "input": "x" * (5 << 20)}
    resp = client.post("/v1/tasks", json=big)
    assert resp.status_code == 413
    assert resp.headers["content-type"] == PROBLEM
    problem = resp.json()
    assert problem["reason"] == "REQUEST_TOO_LARGE"
    assert problem["limit_bytes"] == str(limits.max_request_bytes())

    def chunks() -> Any:  # no Content-Length: the bound holds while the body is read
        yield b'{"agent": "echo", "input": "'
        for _ in range(5):
            yield b"x" * (1 << 20)
        yield b'"}'

    streamed = client.post(
        "/v1/tasks", content=chunks(), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413
    assert streamed.json()["reason"] == "REQUEST_TOO_LARGE"


def test_an_input_over_its_own_bound_is_422(client: TestClient) -> None:
    over = field_limits(TaskSpec, "input").max_bytes  # its encoding adds a few bytes
    resp = client.post("/v1/tasks", json={"agent": "echo", "input": "x" * over})
    assert resp.status_code == 422
    assert resp.json()["errors"][0]["field"] == "input"


def _rpc_error(code: grpc.StatusCode, reason: str, metadata: dict[str, str]) -> Any:
    info = any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason=reason, domain="taskloom.dev", metadata=metadata))
    rich = status_pb2.Status(code=getattr(code_pb2, code.name), message="m", details=[info])
    trailers = grpc.aio.Metadata(("grpc-status-details-bin", rich.SerializeToString()))
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailers, details="m")


def test_orchestrator_reasons_pick_the_http_status() -> None:
    conflict = problem_from_grpc(
        _rpc_error(grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_CONFLICT", {"existing_id": "t1"})
    )
    assert (conflict.status, conflict.reason) == (409, "IDEMPOTENCY_CONFLICT")
    assert conflict.body("/v1/tasks")["existing_id"] == "t1"
    large = problem_from_grpc(
        _rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED, "REQUEST_TOO_LARGE", {"limit_bytes": "9"})
    )
    assert (large.status, large.reason) == (413, "REQUEST_TOO_LARGE")
    assert "Retry-After" not in large.headers


def test_orchestrator_field_names_become_rest_field_names() -> None:
    assert convert.rest_field_name("task.retry.max_attempts") == "max_attempts"
    assert convert.rest_field_name("task.timeout") == "timeout_seconds"
    assert (
        convert.rest_field_name("workflow.steps[2].retry.initial_backoff")
        == "steps.2.retry.initial_backoff_seconds"
    )


def test_the_readme_states_the_limits_the_proto_declares() -> None:
    text = README.read_text()
    found = re.search(r"<!-- limits:start -->\n(.*?)<!-- limits:end -->", text, re.S)
    assert found, "the README has no limits table"
    assert found.group(1) == limits.table(), "run `python -m taskloom.gateway.limits`"
