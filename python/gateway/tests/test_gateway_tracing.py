"""Tracing in the gateway: each REST request is a SERVER span `<METHOD> <route template>`,
child of the request's traceparent, and the orchestrator call a CLIENT span under it whose
context, and only it, travels in the call's metadata."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient
from opentelemetry.trace import SpanKind

from taskloom.testing.fake_orchestrator import FakeOrchestrator
from taskloom.testing.tracing import captured_spans, one, parent_id

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN_ID = "00f067aa0ba902b7"

MakeClient = Callable[..., TestClient]


def test_the_request_span_is_the_parent_of_the_orchestrator_call_and_its_metadata(
    make_client: MakeClient, fake: FakeOrchestrator
) -> None:
    with captured_spans() as exporter:
        client = make_client()
        resp = client.post(
            "/v1/tasks",
            json={"agent": "echo"},
            headers={"traceparent": f"00-{TRACE_ID}-{CALLER_SPAN_ID}-01"},
        )
        assert resp.status_code == 202, resp.text
        spans = exporter.get_finished_spans()

    request = one(spans, "POST /v1/tasks")
    assert request.kind is SpanKind.SERVER
    assert f"{request.context.trace_id:032x}" == TRACE_ID
    assert request.parent is not None and f"{request.parent.span_id:016x}" == CALLER_SPAN_ID
    assert dict(request.attributes or {}) == {
        "http.request.method": "POST",
        "http.route": "/v1/tasks",
        "http.response.status_code": 202,
    }
    submit = one(spans, "taskloom.v1.OrchestratorService/SubmitTask")
    assert submit.kind is SpanKind.CLIENT
    assert parent_id(submit) == request.context.span_id
    assert (submit.attributes or {})["rpc.method"] == "SubmitTask"
    # The orchestrator sees the CLIENT span's context, once, and the task's labels carry none.
    assert fake.last_metadata["traceparent"] == f"00-{TRACE_ID}-{submit.context.span_id:016x}-01"
    assert "traceparent" not in fake.submitted_labels
    # The caller learns the request span's context; logs carry its trace id.
    assert resp.headers["traceparent"] == f"00-{TRACE_ID}-{request.context.span_id:016x}-01"


def test_a_request_without_traceparent_starts_a_trace_named_by_its_route_template(
    make_client: MakeClient,
) -> None:
    with captured_spans() as exporter:
        client = make_client()
        task_id = client.post("/v1/tasks", json={"agent": "echo"}).json()["id"]
        assert client.get(f"/v1/tasks/{task_id}").status_code == 200
        spans = exporter.get_finished_spans()
    read = one(spans, "GET /v1/tasks/{task_id}")
    assert read.parent is None
    assert one(spans, "taskloom.v1.OrchestratorService/GetTask").parent is not None


def test_off_the_request_is_untraced_and_its_traceparent_goes_on_as_it_came(
    make_client: MakeClient, fake: FakeOrchestrator
) -> None:
    tp = f"00-{TRACE_ID}-{CALLER_SPAN_ID}-01"
    resp = make_client().post("/v1/tasks", json={"agent": "echo"}, headers={"traceparent": tp})
    assert resp.headers["traceparent"] == tp
    assert fake.last_metadata["traceparent"] == tp


def test_a_watch_stream_is_a_client_span_under_its_request_that_ends_with_the_stream(
    make_client: MakeClient,
) -> None:
    with captured_spans() as exporter:
        client = make_client()
        task_id = client.post("/v1/tasks", json={"agent": "echo"}).json()["id"]
        resp = client.get(f"/v1/tasks/{task_id}/events")
        assert resp.status_code == 200 and "event: done" in resp.text
        missing = client.get("/v1/tasks/nope/events")
        assert missing.status_code == 404
        client.__exit__(None, None, None)  # the app's loop ends: every stream has ended
        spans = exporter.get_finished_spans()
    requests = [s for s in spans if s.name == "GET /v1/tasks/{task_id}/events"]
    watches = [s for s in spans if s.name == "taskloom.v1.OrchestratorService/WatchTask"]
    assert len(requests) == len(watches) == 2
    assert {parent_id(w) for w in watches} == {r.context.span_id for r in requests}
    codes = sorted(int((w.attributes or {}).get("rpc.grpc.status_code", -1)) for w in watches)  # type: ignore[arg-type]
    assert codes[1] == 5  # NOT_FOUND; the finished stream ends OK or CANCELLED by the gateway
