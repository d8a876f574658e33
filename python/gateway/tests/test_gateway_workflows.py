"""Workflows over REST, against the fake and the real orchestrator alike."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
from fastapi.testclient import TestClient

PROBLEM = "application/problem+json"
WAIT_S = 20.0  # generous: a workflow that never finishes fails the test instead of hanging it


def events(client: TestClient, workflow_id: str) -> list[tuple[str, dict[str, Any]]]:
    """The workflow's SSE events until `done` (the stream ends after it)."""
    out: list[tuple[str, dict[str, Any]]] = []
    with client.stream("GET", f"/v1/workflows/{workflow_id}/events") as resp:
        assert resp.status_code == 200
        name = ""
        for line in resp.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                out.append((name, json.loads(line.removeprefix("data: "))))
    return out


def submit(client: TestClient, spec: dict[str, Any], **headers: str) -> dict[str, Any]:
    resp = client.post("/v1/workflows", json=spec, headers=headers)
    assert resp.status_code == 202, resp.text
    assert resp.headers["location"] == f"/v1/workflows/{resp.json()['id']}"
    body: dict[str, Any] = resp.json()
    return body


def test_a_sequential_workflow_runs_its_steps_in_order(client: TestClient, tenant: str) -> None:
    wf = submit(
        client,
        {
            "steps": [
                {"id": "draft", "agent": "echo", "input": "one two"},
                {"id": "review", "agent": "echo", "input": "three"},
            ]
        },
    )
    assert wf["status"] == "running"
    assert wf["spec"]["mode"] == "sequential"
    assert wf["spec"]["tenant"] == tenant

    seen = events(client, wf["id"])
    assert seen[0][0] == "status"  # the status when the watch began
    done = seen[-1]
    assert done[0] == "done"
    assert done[1]["status"] == "succeeded"
    assert done[1]["output"] == {"echo": "three"}

    got = client.get(f"/v1/workflows/{wf['id']}").json()
    assert got["status"] == "succeeded"
    steps = {s["step_id"]: s for s in got["steps"]}
    assert steps["draft"]["output"] == {"echo": "one two"}
    assert steps["draft"]["finished_at"] <= steps["review"]["started_at"]
    for step in steps.values():
        assert step["status"] == "succeeded"
        assert len(step["task_ids"]) == 1
        task = client.get(f"/v1/tasks/{step['task_ids'][0]}").json()
        assert (task["workflow_id"], task["step_id"]) == (wf["id"], step["step_id"])


def test_a_watch_of_a_running_workflow_gets_its_steps_chunks(served: httpx.Client) -> None:
    http = served
    # `wait` keeps the workflow running, so the watch begins while it runs: the steps that
    # finished before it are replayed (a watch of a finished workflow gets only `done`).
    spec = {
        "mode": "parallel",
        "steps": [
            {"id": "hold", "agent": "wait"},
            {"id": "say", "agent": "echo", "input": "one two"},
        ],
    }
    wf_id = http.post("/v1/workflows", json=spec).json()["id"]
    deadline = time.monotonic() + WAIT_S
    while _step_status(http, wf_id, "say") != "succeeded":
        assert time.monotonic() < deadline, "the echo step never finished"
        time.sleep(0.02)
    chunks, final = [], {}
    with http.stream("GET", f"/v1/workflows/{wf_id}/events") as stream:
        name = ""
        for line in stream.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data = json.loads(line.removeprefix("data: "))
                if name == "step" and data["event"] == "chunk":
                    chunks.append((data["step_id"], data["data"]["text"]))
                    if len(chunks) == 2:
                        assert http.post(f"/v1/workflows/{wf_id}/cancel").status_code == 200
                if name == "done":
                    final = data
    assert chunks == [("say", "one"), ("say", "two")]
    assert final["status"] == "cancelled"


def _step_status(http: httpx.Client, workflow_id: str, step_id: str) -> str | None:
    steps = http.get(f"/v1/workflows/{workflow_id}").json()["steps"]
    status: str | None = next(s["status"] for s in steps if s["step_id"] == step_id)
    return status


def test_a_dag_outputs_its_sink_steps(client: TestClient) -> None:
    wf = submit(
        client,
        {
            "steps": [
                {"id": "a", "agent": "echo", "input": "a"},
                {"id": "b", "agent": "echo", "input": "b", "depends_on": ["a"]},
                {"id": "c", "agent": "echo", "input": "c", "depends_on": ["a"]},
            ]
        },
    )
    assert wf["spec"]["mode"] == "dag"
    done = events(client, wf["id"])[-1][1]
    assert done["status"] == "succeeded"
    assert done["output"] == {"b": {"echo": "b"}, "c": {"echo": "c"}}


def test_cancel_stops_a_running_workflow_once(client: TestClient) -> None:
    wf = submit(client, {"mode": "parallel", "steps": [{"id": "w", "agent": "wait"}]})
    resp = client.post(f"/v1/workflows/{wf['id']}/cancel", json={"reason": "enough"})
    assert resp.status_code == 200
    assert resp.json()["status"] == "cancelled"
    done = events(client, wf["id"])[-1]
    assert done[0] == "done"
    assert done[1]["status"] == "cancelled"
    again = client.post(f"/v1/workflows/{wf['id']}/cancel")
    assert again.status_code == 200
    assert again.json()["status"] == "cancelled"


def test_idempotency_key_returns_the_same_workflow(client: TestClient) -> None:
    spec = {"steps": [{"id": "a", "agent": "echo"}]}
    first = submit(client, spec, **{"Idempotency-Key": "wf-1"})
    again = client.post("/v1/workflows", json=spec, headers={"Idempotency-Key": "wf-1"})
    assert again.status_code == 200
    assert again.json()["id"] == first["id"]


def test_unknown_workflow_is_404(client: TestClient) -> None:
    for resp in (
        client.get("/v1/workflows/nope"),
        client.post("/v1/workflows/nope/cancel"),
        client.get("/v1/workflows/nope/events"),
    ):
        assert resp.status_code == 404
        assert resp.headers["content-type"] == PROBLEM
        assert resp.json()["reason"] == "WORKFLOW_NOT_FOUND"


def test_unknown_agent_is_404_and_bad_graphs_are_422(client: TestClient) -> None:
    resp = client.post("/v1/workflows", json={"steps": [{"id": "a", "agent": "nope"}]})
    assert resp.status_code == 404
    assert resp.json()["reason"] == "AGENT_NOT_FOUND"

    unknown = {"steps": [{"id": "a", "agent": "echo", "depends_on": ["ghost"]}]}
    resp = client.post("/v1/workflows", json=unknown)
    assert resp.status_code == 422
    assert resp.json()["reason"] == "UNKNOWN_STEP"
    assert resp.json()["errors"][0]["field"].startswith("steps")

    cycle = {
        "steps": [
            {"id": "a", "agent": "echo", "depends_on": ["b"]},
            {"id": "b", "agent": "echo", "depends_on": ["a"]},
        ]
    }
    resp = client.post("/v1/workflows", json=cycle)
    assert resp.status_code == 422
    assert resp.json()["reason"] == "WORKFLOW_CYCLE"
    assert client.get("/v1/tasks").json()["tasks"] == []  # nothing was started


def test_workflow_spec_is_validated_by_the_gateway(fake_client: TestClient) -> None:
    resp = fake_client.post("/v1/workflows", json={"mode": "circular", "steps": []})
    assert resp.status_code == 422
    assert {e["field"] for e in resp.json()["errors"]} == {"mode", "steps"}
