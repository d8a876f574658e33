"""Tasks over REST: submit, read, list, cancel, errors. The contract tests (those taking
`client`) run against the fake and the real orchestrator alike."""

from __future__ import annotations

import time
from typing import Any

from fastapi.testclient import TestClient

from taskloom.testing.fake_orchestrator import DEFAULT_TIMEOUT_S, FakeOrchestrator
from taskloom.testing.under_test import OrchestratorUnderTest

PROBLEM = "application/problem+json"
TERMINAL = {"succeeded", "failed", "cancelled", "timed_out"}
WAIT_S = 20.0  # generous: a task that never finishes fails the test instead of hanging it


def finished(client: TestClient, task_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_S
    while True:
        task: dict[str, Any] = client.get(f"/v1/tasks/{task_id}").json()
        if task["status"] in TERMINAL:
            return task
        assert time.monotonic() < deadline, f"task {task_id} did not finish: {task}"
        time.sleep(0.02)


def test_submit_returns_202_and_location_then_the_task_runs(
    client: TestClient, tenant: str
) -> None:
    resp = client.post(
        "/v1/tasks",
        json={"agent": "echo", "input": {"q": "hi", "n": 2}, "priority": 7, "labels": {"a": "b"}},
    )
    assert resp.status_code == 202, resp.text
    task = resp.json()
    assert task["status"] == "queued"
    assert task["tenant"] == tenant
    assert resp.headers["location"] == f"/v1/tasks/{task['id']}"

    got = client.get(resp.headers["location"])
    assert got.status_code == 200
    body = got.json()
    assert body["id"] == task["id"]
    assert body["input"] == {"q": "hi", "n": 2}
    assert body["priority"] == 7
    assert body["labels"]["a"] == "b"
    assert body["created_at"].endswith("Z")

    done = finished(client, task["id"])
    assert done["status"] == "succeeded"
    assert done["result"] == {"echo": {"q": "hi", "n": 2}}
    assert done["attempts"] == 1
    assert done["error"] is None
    assert done["started_at"] and done["finished_at"] and done["worker_id"]


def test_defaults_and_options_reach_the_orchestrator(client: TestClient) -> None:
    task = client.post(
        "/v1/tasks", json={"agent": "echo", "timeout_seconds": 1.5, "max_attempts": 4}
    ).json()
    assert task["priority"] == 5
    assert task["timeout_seconds"] == 1.5
    assert task["max_attempts"] == 4
    default = client.post("/v1/tasks", json={"agent": "echo"}).json()
    assert default["timeout_seconds"] == DEFAULT_TIMEOUT_S
    assert default["max_attempts"] == 3


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


def test_full_queue_is_429_with_retry_after(
    client: TestClient, orchestrator: OrchestratorUnderTest
) -> None:
    with orchestrator.full_queue():
        resp = client.post("/v1/tasks", json={"agent": "echo"})
    assert resp.status_code == 429
    assert resp.headers["content-type"] == PROBLEM
    assert resp.json()["reason"] == "QUEUE_FULL"
    assert int(resp.headers["retry-after"]) >= 1


def test_idempotency_key_returns_the_same_task_with_200(client: TestClient) -> None:
    headers = {"Idempotency-Key": "order-42"}
    first = client.post("/v1/tasks", json={"agent": "echo"}, headers=headers)
    again = client.post("/v1/tasks", json={"agent": "echo"}, headers=headers)
    other = client.post("/v1/tasks", json={"agent": "echo"})
    assert (first.status_code, again.status_code, other.status_code) == (202, 200, 202)
    assert again.json()["id"] == first.json()["id"] != other.json()["id"]
    assert again.headers["location"] == f"/v1/tasks/{first.json()['id']}"


def test_list_is_newest_first_filtered_and_paged(client: TestClient) -> None:
    ids = [client.post("/v1/tasks", json={"agent": "wait"}).json()["id"] for _ in range(3)]
    assert client.post(f"/v1/tasks/{ids[0]}/cancel").status_code == 200

    page1 = client.get("/v1/tasks", params={"page_size": 2}).json()
    assert [t["id"] for t in page1["tasks"]] == [ids[2], ids[1]]
    assert page1["next_page_token"]
    page2 = client.get(
        "/v1/tasks", params={"page_size": 2, "page_token": page1["next_page_token"]}
    ).json()
    assert [t["id"] for t in page2["tasks"]] == [ids[0]]
    assert page2["next_page_token"] is None

    cancelled = client.get("/v1/tasks", params={"status": "cancelled"}).json()["tasks"]
    assert [t["id"] for t in cancelled] == [ids[0]]
    assert client.get("/v1/tasks", params={"agent": "echo"}).json()["tasks"] == []
    assert client.get("/v1/tasks", params={"status": "bogus"}).status_code == 422


def test_cancel_then_cancel_again_is_409(client: TestClient) -> None:
    task_id = client.post("/v1/tasks", json={"agent": "wait"}).json()["id"]
    resp = client.post(f"/v1/tasks/{task_id}/cancel", json={"reason": "changed my mind"})
    assert resp.status_code == 200
    cancelled = resp.json()
    assert cancelled["status"] == "cancelled"
    assert cancelled["error"]["reason"] == "CANCELLED"
    assert cancelled["finished_at"]
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
            "limits": {"max_tokens": None, "max_running": None, "provider_max_running": None},
        },
        {
            "name": "wait",
            "description": "Runs until it is cancelled.",
            "provider": "simulated",
            "model": "sim-1",
            "tools": [],
            "limits": {"max_tokens": None, "max_running": 1, "provider_max_running": None},
        },
    ]
    one = client.get("/v1/agents/wait")
    assert one.status_code == 200 and one.json() == resp.json()["agents"][1]
    missing = client.get("/v1/agents/nope")
    assert missing.status_code == 404 and missing.json()["reason"] == "AGENT_NOT_FOUND"


def test_traceparent_is_kept_and_echoed_and_the_orchestrator_labels_the_task_with_it(
    client: TestClient,
) -> None:
    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    resp = client.post("/v1/tasks", json={"agent": "echo"}, headers={"traceparent": tp})
    assert resp.headers["traceparent"] == tp
    assert resp.json()["labels"]["traceparent"] == tp


def test_traceparent_is_created_when_missing_or_invalid(fake_client: TestClient) -> None:
    resp = fake_client.get("/healthz", headers={"traceparent": "garbage"})
    tp = resp.headers["traceparent"]
    assert tp != "garbage"
    version, trace_id, parent_id, flags = tp.split("-")
    assert (version, len(trace_id), len(parent_id), flags) == ("00", 32, 16, "01")


# The gateway alone, steering the fake orchestrator.


def test_traceparent_reaches_the_orchestrator_in_the_metadata(
    fake_client: TestClient, fake: FakeOrchestrator
) -> None:
    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    fake_client.post("/v1/tasks", json={"agent": "echo"}, headers={"traceparent": tp})
    assert fake.last_metadata["traceparent"] == tp
    # Once: in the metadata, not in the task's labels too (the orchestrator stores it).
    assert "traceparent" not in fake.submitted_labels


def test_orchestrator_invalid_argument_names_the_rest_field(
    fake_client: TestClient, fake: FakeOrchestrator
) -> None:
    fake.reject_field = "task.timeout"
    resp = fake_client.post("/v1/tasks", json={"agent": "echo", "timeout_seconds": 1})
    assert resp.status_code == 422
    problem = resp.json()
    assert problem["reason"] == "INVALID_ARGUMENT"
    assert problem["errors"] == [{"field": "timeout_seconds", "message": "is invalid"}]
    assert "timeout" in problem["detail"]


def test_retry_after_is_the_orchestrators_hint_rounded_up(
    fake_client: TestClient, fake: FakeOrchestrator
) -> None:
    fake.queue_full = True  # the fake hints 2500 ms
    resp = fake_client.post("/v1/tasks", json={"agent": "echo"})
    assert resp.headers["retry-after"] == "3"


def test_a_batch_is_queued_whole_with_a_key_per_item(client: TestClient, tenant: str) -> None:
    items = [
        {"agent": "echo", "input": "one", "idempotency_key": "b-1"},
        {"agent": "echo", "input": "two", "priority": 9},
        {"agent": "echo", "input": "three", "idempotency_key": "b-3"},
    ]
    resp = client.post("/v1/tasks:batch", json={"tasks": items})
    assert resp.status_code == 202, resp.text
    tasks = resp.json()["tasks"]
    assert [t["input"] for t in tasks] == ["one", "two", "three"]
    assert {t["tenant"] for t in tasks} == {tenant}
    assert tasks[1]["priority"] == 9 and tasks[0]["idempotency_key"] == "b-1"
    again = client.post("/v1/tasks:batch", json={"tasks": [items[2], items[0]]}).json()["tasks"]
    assert [t["id"] for t in again] == [tasks[2]["id"], tasks[0]["id"]]


def test_a_batch_with_one_bad_item_queues_nothing(client: TestClient) -> None:
    before = client.get("/v1/tasks").json()["tasks"]
    unknown = client.post("/v1/tasks:batch", json={"tasks": [{"agent": "echo"}, {"agent": "nope"}]})
    assert unknown.status_code == 404 and unknown.json()["reason"] == "AGENT_NOT_FOUND"
    invalid = client.post(
        "/v1/tasks:batch", json={"tasks": [{"agent": "echo"}, {"agent": "echo", "priority": 10}]}
    )
    assert invalid.status_code == 422
    assert invalid.json()["errors"][0]["field"] == "tasks.1.priority"
    assert client.get("/v1/tasks").json()["tasks"] == before
    empty = client.post("/v1/tasks:batch", json={"tasks": []})
    assert empty.status_code == 422 and empty.json()["errors"][0]["field"] == "tasks"


def test_a_body_that_is_not_json_is_400(client: TestClient) -> None:
    resp = client.post(
        "/v1/tasks", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert resp.status_code == 400
    assert resp.headers["content-type"] == PROBLEM
    assert resp.json()["reason"] == "MALFORMED_BODY"
