"""Tasks over REST against the fake orchestrator: submit, read, list, cancel, errors."""

from __future__ import annotations

from fastapi.testclient import TestClient

from taskloom.gateway.testing import FakeOrchestrator

PROBLEM = "application/problem+json"


def test_submit_returns_202_and_location_then_get_returns_the_task(client: TestClient) -> None:
    resp = client.post(
        "/v1/tasks",
        json={"agent": "echo", "input": {"q": "hi", "n": 2}, "priority": 7, "labels": {"a": "b"}},
    )
    assert resp.status_code == 202, resp.text
    task = resp.json()
    assert task["status"] == "queued"
    assert task["tenant"] == "default"
    assert resp.headers["location"] == f"/v1/tasks/{task['id']}"

    got = client.get(resp.headers["location"])
    assert got.status_code == 200
    body = got.json()
    assert body["id"] == task["id"]
    assert body["input"] == {"q": "hi", "n": 2}
    assert body["priority"] == 7
    assert body["labels"]["a"] == "b"
    assert body["error"] is None and body["result"] is None and body["started_at"] is None
    assert body["created_at"].endswith("Z")


def test_priority_defaults_to_5_and_options_reach_the_orchestrator(
    client: TestClient, fake: FakeOrchestrator
) -> None:
    resp = client.post(
        "/v1/tasks", json={"agent": "echo", "timeout_seconds": 1.5, "max_attempts": 4}
    )
    task = resp.json()
    assert task["priority"] == 5
    assert task["timeout_seconds"] == 1.5
    assert task["max_attempts"] == 4


def test_missing_agent_is_422_naming_the_field(client: TestClient) -> None:
    resp = client.post("/v1/tasks", json={"input": "x"})
    assert resp.status_code == 422
    assert resp.headers["content-type"] == PROBLEM
    problem = resp.json()
    assert problem["errors"][0]["field"] == "agent"
    assert problem["reason"] == "INVALID_ARGUMENT"
    assert problem["instance"] == "/v1/tasks"
    assert problem["type"] == "https://taskloom.dev/problems/invalid-argument"


def test_out_of_range_priority_and_unknown_field_are_422(client: TestClient) -> None:
    resp = client.post("/v1/tasks", json={"agent": "echo", "priority": 12, "colour": "red"})
    assert resp.status_code == 422
    fields = {e["field"] for e in resp.json()["errors"]}
    assert fields == {"priority", "colour"}


def test_orchestrator_invalid_argument_names_the_rest_field(
    client: TestClient, fake: FakeOrchestrator
) -> None:
    fake.reject_field = "task.timeout"
    resp = client.post("/v1/tasks", json={"agent": "echo", "timeout_seconds": 1})
    assert resp.status_code == 422
    problem = resp.json()
    assert problem["reason"] == "INVALID_ARGUMENT"
    assert problem["errors"] == [{"field": "timeout_seconds", "message": "is invalid"}]
    assert "timeout" in problem["detail"]


def test_unknown_agent_is_404_with_reason(client: TestClient) -> None:
    resp = client.post("/v1/tasks", json={"agent": "nope"})
    assert resp.status_code == 404
    assert resp.headers["content-type"] == PROBLEM
    problem = resp.json()
    assert problem["reason"] == "AGENT_NOT_FOUND"
    assert problem["type"] == "https://taskloom.dev/problems/agent-not-found"
    assert "nope" in problem["detail"]


def test_unknown_task_is_404_task_not_found(client: TestClient) -> None:
    resp = client.get("/v1/tasks/does-not-exist")
    assert resp.status_code == 404
    assert resp.json()["reason"] == "TASK_NOT_FOUND"


def test_queue_full_is_429_with_retry_after(client: TestClient, fake: FakeOrchestrator) -> None:
    fake.queue_full = True
    resp = client.post("/v1/tasks", json={"agent": "echo"})
    assert resp.status_code == 429
    assert resp.headers["retry-after"] == "3"  # 2500 ms, rounded up
    assert resp.json()["reason"] == "QUEUE_FULL"


def test_idempotency_key_returns_the_same_task_with_200(client: TestClient) -> None:
    headers = {"Idempotency-Key": "order-42"}
    first = client.post("/v1/tasks", json={"agent": "echo"}, headers=headers)
    again = client.post("/v1/tasks", json={"agent": "echo"}, headers=headers)
    other = client.post("/v1/tasks", json={"agent": "echo"})
    assert (first.status_code, again.status_code, other.status_code) == (202, 200, 202)
    assert again.json()["id"] == first.json()["id"] != other.json()["id"]


def test_list_filters_and_pages(client: TestClient) -> None:
    ids = [client.post("/v1/tasks", json={"agent": "echo"}).json()["id"] for _ in range(3)]
    client.post(f"/v1/tasks/{ids[0]}/cancel")

    page1 = client.get("/v1/tasks", params={"page_size": 2}).json()
    assert len(page1["tasks"]) == 2 and page1["next_page_token"]
    page2 = client.get(
        "/v1/tasks", params={"page_size": 2, "page_token": page1["next_page_token"]}
    ).json()
    assert page2["next_page_token"] is None
    assert {t["id"] for t in page1["tasks"] + page2["tasks"]} == set(ids)

    cancelled = client.get("/v1/tasks", params={"status": "cancelled"}).json()["tasks"]
    assert [t["id"] for t in cancelled] == [ids[0]]
    assert client.get("/v1/tasks", params={"status": "bogus"}).status_code == 422


def test_cancel_then_cancel_again_is_409(client: TestClient) -> None:
    task_id = client.post("/v1/tasks", json={"agent": "echo"}).json()["id"]
    resp = client.post(f"/v1/tasks/{task_id}/cancel", json={"reason": "changed my mind"})
    assert resp.status_code == 200
    assert resp.json()["status"] == "cancelled"
    again = client.post(f"/v1/tasks/{task_id}/cancel")
    assert again.status_code == 409
    assert again.json()["reason"] == "TASK_FINISHED"


def test_agents_are_listed(client: TestClient) -> None:
    resp = client.get("/v1/agents")
    assert resp.status_code == 200
    assert resp.json()["agents"] == [
        {
            "name": "echo",
            "description": "Repeats its input.",
            "provider": "simulated",
            "model": "sim-1",
            "tools": ["clock"],
        }
    ]


def test_traceparent_is_kept_passed_on_and_echoed(
    client: TestClient, fake: FakeOrchestrator
) -> None:
    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    resp = client.post("/v1/tasks", json={"agent": "echo"}, headers={"traceparent": tp})
    assert resp.headers["traceparent"] == tp
    assert fake.last_metadata["traceparent"] == tp
    assert resp.json()["labels"]["traceparent"] == tp


def test_traceparent_is_created_when_missing_or_invalid(client: TestClient) -> None:
    resp = client.get("/healthz", headers={"traceparent": "garbage"})
    tp = resp.headers["traceparent"]
    assert tp != "garbage"
    version, trace_id, parent_id, flags = tp.split("-")
    assert (version, len(trace_id), len(parent_id), flags) == ("00", 32, 16, "01")


def test_workflows_are_501_until_the_orchestrator_implements_them(client: TestClient) -> None:
    spec = {"mode": "dag", "steps": [{"id": "a", "agent": "echo"}]}
    resp = client.post("/v1/workflows", json=spec)
    assert resp.status_code == 501
    assert resp.headers["content-type"] == PROBLEM
    assert resp.json()["reason"] == "UNIMPLEMENTED"
    assert client.get("/v1/workflows/w1").status_code == 501
    assert client.post("/v1/workflows/w1/cancel").status_code == 501
    assert client.get("/v1/workflows/w1/events").status_code == 501


def test_workflow_spec_is_validated_by_the_gateway(client: TestClient) -> None:
    resp = client.post("/v1/workflows", json={"mode": "circular", "steps": []})
    assert resp.status_code == 422
    assert {e["field"] for e in resp.json()["errors"]} == {"mode", "steps"}
