"""Workflows end to end: REST → gateway → orchestrator's workflow engine → workers."""

from __future__ import annotations

from typing import Any

import httpx

from .test_task_flow import read_sse, sse_events


def run_workflow(
    client: httpx.Client, body: dict[str, Any]
) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
    response = client.post("/v1/workflows", json=body)
    assert response.status_code == 202, response.text
    workflow_id = response.json()["id"]
    events = read_sse(client, f"/v1/workflows/{workflow_id}/events")
    return client.get(f"/v1/workflows/{workflow_id}").json(), events


def test_sequential_steps_see_upstream_outputs(gateway: str) -> None:
    body = {
        "mode": "sequential",
        "input": {"topic": "durable queues"},
        "steps": [
            {"id": "draft", "agent": "assistant", "input": "Write about {{ input.topic }}"},
            {
                "id": "review",
                "agent": "assistant",
                "input": "Review: {{ steps.draft.output.text }}",
            },
        ],
    }
    with httpx.Client(base_url=gateway, timeout=30) as client:
        workflow, events = run_workflow(client, body)
        draft, review = workflow["steps"]
        review_task = client.get(f"/v1/tasks/{review['task_ids'][0]}").json()

    assert workflow["status"] == "succeeded", workflow
    assert "Write about durable queues" in draft["output"]["text"]
    assert review_task["input"] == "Review: " + draft["output"]["text"]
    assert review_task["workflow_id"] == workflow["id"]
    assert workflow["output"] == review["output"]
    assert events[-1][0] == "done"
    assert events[-1][1]["status"] == "succeeded"


def test_dag_joins_parallel_branches(gateway: str) -> None:
    body = {
        "mode": "dag",
        "steps": [
            {"id": "a", "agent": "assistant", "input": "start"},
            {
                "id": "b",
                "agent": "assistant",
                "input": "b {{ steps.a.output.model }}",
                "depends_on": ["a"],
            },
            {
                "id": "c",
                "agent": "assistant",
                "input": "c {{ steps.a.output.model }}",
                "depends_on": ["a"],
            },
            {
                "id": "d",
                "agent": "assistant",
                "input": {"prompt": "{{ steps.b.output.agent }} and {{ steps.c.output.agent }}"},
                "depends_on": ["b", "c"],
            },
        ],
    }
    with httpx.Client(base_url=gateway, timeout=30) as client:
        workflow, _ = run_workflow(client, body)
    assert workflow["status"] == "succeeded", workflow
    assert {s["step_id"]: s["status"] for s in workflow["steps"]} == dict.fromkeys(
        "abcd", "succeeded"
    )
    assert set(workflow["output"]) == {"d"}
    assert 'You asked: "assistant and assistant"' in workflow["output"]["d"]["text"]


def test_cycle_is_rejected_naming_it(gateway: str) -> None:
    body = {
        "mode": "dag",
        "steps": [
            {"id": "a", "agent": "assistant", "depends_on": ["b"]},
            {"id": "b", "agent": "assistant", "depends_on": ["a"]},
        ],
    }
    response = httpx.post(f"{gateway}/v1/workflows", json=body)
    assert response.status_code in (400, 422)
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["reason"] == "WORKFLOW_CYCLE"
    assert "a -> b -> a" in problem["detail"] or "b -> a -> b" in problem["detail"]


def test_a_workflow_stream_reopened_with_last_event_id_goes_on_after_it(gateway: str) -> None:
    # `hold` waits a minute for its model, so the workflow runs while both streams are read;
    # it is cancelled at the end.
    body = {
        "mode": "parallel",
        "steps": [
            {
                "id": "hold",
                "agent": "assistant",
                "input": {"prompt": "wait", "simulate": {"latency_ms": 60000}},
            },
            {"id": "say", "agent": "assistant", "input": "a few words to stream in chunks"},
        ],
    }
    with httpx.Client(base_url=gateway, timeout=30) as client:
        workflow_id = client.post("/v1/workflows", json=body).json()["id"]
        path = f"/v1/workflows/{workflow_id}/events"
        first: list[tuple[int, dict[str, Any]]] = []
        with client.stream("GET", path) as response:
            for ident, name, data in sse_events(response):
                if name == "step" and data["step_id"] == "say":
                    first.append((int(ident or 0), data))
                    if data["event"] == "done":
                        break
        chunks = [(i, d["data"]["text"]) for i, d in first if d["event"] == "chunk"]
        assert len(chunks) >= 2, (first, client.get(f"/v1/workflows/{workflow_id}").json())
        resume_after = chunks[0][0]

        resumed: list[tuple[int, str, dict[str, Any]]] = []
        with client.stream("GET", path, headers={"Last-Event-ID": str(resume_after)}) as response:
            for ident, name, data in sse_events(response):
                resumed.append((int(ident or 0), name, data))
                if name == "step" and data["step_id"] == "say" and data["event"] == "done":
                    assert client.post(f"/v1/workflows/{workflow_id}/cancel").status_code == 200
    assert resumed[0][1] == "status"  # the workflow's status comes first, as always
    step_ids = [i for i, name, _ in resumed if name == "step"]
    assert step_ids == sorted(step_ids) and min(step_ids) > resume_after
    say_chunks = [
        (i, d["data"]["text"])
        for i, name, d in resumed
        if name == "step" and d["step_id"] == "say" and d["event"] == "chunk"
    ]
    assert say_chunks == chunks[1:]
    assert resumed[-1][1] == "done" and resumed[-1][2]["status"] == "cancelled"
