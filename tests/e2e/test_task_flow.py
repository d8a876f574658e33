"""One agent task end to end: REST → gateway → orchestrator → worker → back."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson

from taskloom.sdk.localstack import Stack

TERMINAL = {"succeeded", "failed", "cancelled", "timed_out"}


def wait_finished(client: httpx.Client, task_id: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task: dict[str, Any] = client.get(f"/v1/tasks/{task_id}").json()
        if task["status"] in TERMINAL:
            return task
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} did not finish: {task}")


def sse_events(response: httpx.Response) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(id, name, data) of each event of an SSE response as it arrives; id "" for an event
    without one."""
    ident, name, data = "", "message", []
    for line in response.iter_lines():
        if line.startswith("id:"):
            ident = line.removeprefix("id:").strip()
        elif line.startswith("event:"):
            name = line.removeprefix("event:").strip()
        elif line.startswith("data:"):
            data.append(line.removeprefix("data:").strip())
        elif line == "" and data:
            yield ident, name, orjson.loads("\n".join(data))
            ident, name, data = "", "message", []


def read_sse(client: httpx.Client, path: str) -> list[tuple[str, dict[str, Any]]]:
    """(name, data) of every event of the stream at `path`, read to its end."""
    with client.stream("GET", path, timeout=30.0) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return [(name, data) for _, name, data in sse_events(response)]


def test_agents_lists_the_shipped_assistant(gateway: str) -> None:
    agents = httpx.get(f"{gateway}/v1/agents").json()["agents"]
    assistant = next(a for a in agents if a["name"] == "assistant")
    assert assistant["provider"] == "simulated"


def test_submitted_task_returns_the_simulated_answer(gateway: str) -> None:
    with httpx.Client(base_url=gateway) as client:
        response = client.post("/v1/tasks", json={"agent": "assistant", "input": "What is 2+2?"})
        assert response.status_code == 202, response.text
        body = response.json()
        assert body["status"] == "queued"
        assert response.headers["location"] == f"/v1/tasks/{body['id']}"

        task = wait_finished(client, body["id"])
        assert task["status"] == "succeeded", task
        assert task["agent"] == "assistant"
        assert task["result"]["simulated"] is True
        assert "simulated" in task["result"]["text"].lower()
        assert task["created_at"] and task["finished_at"]
        assert task["error"] is None


def test_event_stream_delivers_chunks_then_done(gateway: str) -> None:
    with httpx.Client(base_url=gateway) as client:
        task_id = client.post(
            "/v1/tasks", json={"agent": "assistant", "input": "Stream me a story"}
        ).json()["id"]
        events = read_sse(client, f"/v1/tasks/{task_id}/events")

    names = [name for name, _ in events]
    assert names[-1] == "done"
    assert names.count("done") == 1
    chunks = [data for name, data in events if name == "chunk"]
    assert chunks, names
    assert [c["seq"] for c in chunks] == list(range(len(chunks)))
    final = events[-1][1]
    assert final["status"] == "succeeded"
    assert "".join(c["text"] for c in chunks) == final["result"]["text"]


def test_identical_prompt_is_served_from_the_llm_cache(gateway: str) -> None:
    with httpx.Client(base_url=gateway) as client:
        payload = {"agent": "assistant", "input": "Cache me, exactly this prompt"}
        first = wait_finished(client, client.post("/v1/tasks", json=payload).json()["id"])
        second = wait_finished(client, client.post("/v1/tasks", json=payload).json()["id"])
    assert first["result"]["cached"] is False
    assert second["result"]["cached"] is True
    assert second["result"]["text"] == first["result"]["text"]


def test_worker_reports_metrics_to_the_metrics_service(gateway: str, stack: Stack) -> None:
    with httpx.Client(base_url=gateway) as client:
        task_id = client.post("/v1/tasks", json={"agent": "assistant", "input": "count me"}).json()[
            "id"
        ]
        wait_finished(client, task_id)
    metrics_url = f"{stack.service('metrics').base_url}/metrics"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if "taskloom_agent_" in httpx.get(metrics_url).text:
            return
        time.sleep(0.2)
    raise AssertionError("no taskloom_agent_* series reached the metrics service")


def test_worker_llm_requests_reach_the_agent_summary(gateway: str) -> None:
    """The worker records its LLM requests, latency and cache lookups per agent and model,
    so `GET /v1/metrics/agents` (SummarizeAgents) has them for a real task."""
    with httpx.Client(base_url=gateway) as client:
        payload = {"agent": "assistant", "input": "Summarize me, asked twice"}
        for _ in range(2):
            wait_finished(client, client.post("/v1/tasks", json=payload).json()["id"])
        deadline = time.monotonic() + 30
        summary: dict[str, Any] = {}
        while time.monotonic() < deadline:
            reply = client.get("/v1/metrics/agents", params={"agent": "assistant", "window": "1h"})
            assert reply.status_code == 200, reply.text
            rows = reply.json()["agents"]
            summary = rows[0] if rows else {}
            if summary.get("requests", 0) >= 1 and summary.get("cache_hit_ratio") is not None:
                break
            time.sleep(0.2)
    assert summary.get("model") == "sim-1", summary
    assert summary["requests"] >= 1 and summary["requests_per_second"] > 0
    assert summary["latency_p50_seconds"] > 0
    # The second, identical prompt was answered by the LLM cache.
    assert 0 < summary["cache_hit_ratio"] < 1
    assert summary["tokens"] > 0
