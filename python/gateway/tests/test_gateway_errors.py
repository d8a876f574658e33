"""Problem+json for what is not the orchestrator's answer: routes, auth, outages; and health."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import grpc
from fastapi.testclient import TestClient

from taskloom.gateway.app import create_app
from taskloom.gateway.config import Settings
from taskloom.gateway.errors import problem_from_grpc
from taskloom.testing.servers import unused_address
from taskloom.testing.under_test import OrchestratorUnderTest

MakeClient = Callable[..., TestClient]
PROBLEM = "application/problem+json"


def test_unknown_route_is_404_problem(fake_client: TestClient) -> None:
    resp = fake_client.get("/v1/nothing-here")
    assert resp.status_code == 404
    assert resp.headers["content-type"] == PROBLEM
    problem = resp.json()
    assert problem["status"] == 404
    assert problem["instance"] == "/v1/nothing-here"
    assert problem["reason"] == "NOT_FOUND"


def test_wrong_method_is_405_problem(fake_client: TestClient) -> None:
    resp = fake_client.delete("/v1/tasks")
    assert resp.status_code == 405
    assert resp.headers["content-type"] == PROBLEM
    assert resp.json()["reason"] == "METHOD_NOT_ALLOWED"


def test_orchestrator_down_is_503_problem(make_client: MakeClient) -> None:
    client = make_client(orchestrator_addr=unused_address())
    resp = client.post("/v1/tasks", json={"agent": "echo"})
    assert resp.status_code == 503
    assert resp.headers["content-type"] == PROBLEM
    problem = resp.json()
    assert problem["reason"] == "UNAVAILABLE"
    assert "127.0.0.1" not in problem["detail"]  # no internal addresses leak
    assert client.get("/v1/tasks/x/events").status_code == 503


def test_metrics_service_down_is_503_problem_naming_it(make_client: MakeClient) -> None:
    client = make_client(metrics_addr=unused_address())
    resp = client.get("/v1/metrics/agents")
    assert resp.status_code == 503
    assert resp.headers["content-type"] == PROBLEM
    assert resp.headers["retry-after"] == "1"
    problem = resp.json()
    assert problem["reason"] == "UNAVAILABLE"
    assert problem["detail"] == "The metrics service is unreachable; try again later."


def test_a_backends_deadline_is_504_naming_it() -> None:
    err = grpc.aio.AioRpcError(
        grpc.StatusCode.DEADLINE_EXCEEDED, grpc.aio.Metadata(), grpc.aio.Metadata()
    )
    problem = problem_from_grpc(err, peer="metrics service")
    assert (problem.status, problem.reason) == (504, "DEADLINE_EXCEEDED")
    assert problem.detail == "The metrics service did not answer in time."
    assert "orchestrator" in problem_from_grpc(err).detail


def test_readyz_follows_the_orchestrators_health(make_client: MakeClient) -> None:
    up = make_client()
    assert up.get("/readyz").status_code == 200
    assert up.get("/readyz").json()["checks"] == {"orchestrator": "serving"}
    down = make_client(orchestrator_addr=unused_address())
    resp = down.get("/readyz")
    assert resp.status_code == 503
    assert resp.headers["content-type"] == PROBLEM
    assert resp.json()["checks"] == {"orchestrator": "not_serving"}
    assert down.get("/healthz").json() == {"status": "ok", "checks": {}}


def test_auth_off_everyone_is_tenant_default(fake_client: TestClient) -> None:
    resp = fake_client.post("/v1/tasks", json={"agent": "echo"})
    assert resp.status_code == 202
    assert resp.json()["tenant"] == "default"


def test_auth_on_requires_a_key_and_sets_the_tenant(orchestrator: OrchestratorUnderTest) -> None:
    suffix = uuid.uuid4().hex[:8]  # tenants of this test alone on a shared orchestrator
    settings = Settings(
        orchestrator_addr=orchestrator.addr,
        api_keys=f"ka=tenant-a-{suffix},kb=tenant-b-{suffix}",
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        _auth_sets_the_tenant(client, suffix)


def _auth_sets_the_tenant(client: TestClient, suffix: str) -> None:
    missing = client.post("/v1/tasks", json={"agent": "echo"})
    assert missing.status_code == 401
    assert missing.headers["content-type"] == PROBLEM
    assert missing.json()["reason"] == "UNAUTHENTICATED"
    wrong = client.get("/v1/agents", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401

    a = client.post("/v1/tasks", json={"agent": "echo"}, headers={"Authorization": "Bearer ka"})
    assert a.status_code == 202
    assert a.json()["tenant"] == f"tenant-a-{suffix}"
    b = client.post("/v1/tasks", json={"agent": "echo"}, headers={"X-API-Key": "kb"})
    assert b.json()["tenant"] == f"tenant-b-{suffix}"

    # Tenants see only their own tasks.
    task_a = a.json()["id"]
    assert client.get(f"/v1/tasks/{task_a}", headers={"X-API-Key": "ka"}).status_code == 200
    assert client.get(f"/v1/tasks/{task_a}", headers={"X-API-Key": "kb"}).status_code == 404
    listed = client.get("/v1/tasks", headers={"X-API-Key": "kb"}).json()["tasks"]
    assert [t["tenant"] for t in listed] == [f"tenant-b-{suffix}"]
    # Health and metrics stay open.
    assert client.get("/healthz").status_code == 200


def test_metrics_count_requests_by_route_template(fake_client: TestClient) -> None:
    client = fake_client
    client.get("/v1/tasks/abc")
    text = client.get("/metrics").text
    assert (
        'taskloom_gateway_requests_total{method="GET",route="/v1/tasks/{task_id}",status="404"}'
        in text
    )
    assert "taskloom_gateway_request_duration_seconds_bucket" in text


def test_unknown_http_methods_share_one_metric_label(fake_client: TestClient) -> None:
    client = fake_client
    for method in ("BREW", "PROPFIND"):
        assert client.request(method, "/v1/tasks/abc").status_code == 405
    assert client.request("PATCH", "/v1/tasks/abc").status_code == 405
    samples = [
        line
        for line in client.get("/metrics").text.splitlines()
        if line.startswith("taskloom_gateway_requests_total{")
    ]
    methods = {line.split('method="', 1)[1].split('"', 1)[0] for line in samples}
    assert {"other", "PATCH"} <= methods
    assert methods <= {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "other"}
    assert (
        'taskloom_gateway_requests_total{method="other",route="/v1/tasks/{task_id}",status="405"}'
        in "\n".join(samples)
    )


def test_openapi_docs_are_served(fake_client: TestClient) -> None:
    client = fake_client
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/tasks", "/v1/tasks/{task_id}", "/v1/agents", "/v1/workflows"} <= set(paths)
