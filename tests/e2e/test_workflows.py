"""Workflows end to end: REST → gateway → orchestrator's workflow engine → workers."""

from __future__ import annotations

from typing import Any

import httpx

from .test_task_flow import read_sse


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
