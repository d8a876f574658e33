"""Task lifecycle paths through the real stack: timeout, cancellation, backpressure.

These run on a stack of their own whose only worker is slow (a simulated LLM that takes
ten seconds), with concurrency 1 and a queue of two, so that states can be caught.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from taskloom.sdk.localstack import Ports, Stack, StackConfig

SLOW_AGENT = """\
name: slowpoke
description: Test agent on a deliberately slow simulated LLM.
provider: simulated
model: sim-slow
cache: false
"""


@pytest.fixture(scope="module")
def slow_stack(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    state = tmp_path_factory.mktemp("slow-stack")
    agents = state / "agents"
    agents.mkdir()
    (agents / "slowpoke.yaml").write_text(SLOW_AGENT)
    cfg = StackConfig(
        bin_dir=stack.cfg.bin_dir,
        state_dir=state,
        ports=Ports.random(),
        only=("orchestrator", "worker", "gateway"),
        env_overrides={
            "orchestrator": {"TASKLOOM_MAX_QUEUE": "2"},
            "worker": {
                "TASKLOOM_AGENTS_DIR": str(agents),
                "TASKLOOM_CONCURRENCY": "1",
                "TASKLOOM_SIM_LATENCY_MS": "10000",
                "TASKLOOM_CACHE_ADDR": "",
                "TASKLOOM_METRICS_ADDR": "",
            },
        },
    )
    with Stack(cfg) as running:
        yield running


def wait_status(
    client: httpx.Client, task_id: str, wanted: set[str], timeout: float = 20
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task: dict[str, Any] = client.get(f"/v1/tasks/{task_id}").json()
        if task["status"] in wanted:
            return task
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} never reached {wanted}: {task}")


def worker_outcomes(stack: Stack) -> str:
    return httpx.get(f"{stack.service('worker').base_url}/metrics").text


def submit(client: httpx.Client, **extra: object) -> httpx.Response:
    return client.post("/v1/tasks", json={"agent": "slowpoke", "input": "slow", **extra})


def test_deadline_ends_the_task_timed_out_without_retry(slow_stack: Stack) -> None:
    with httpx.Client(base_url=slow_stack.gateway_url) as client:
        task_id = submit(client, timeout_seconds=0.5, max_attempts=3).json()["id"]
        task = wait_status(client, task_id, {"timed_out", "failed", "succeeded"})
    assert task["status"] == "timed_out", task
    assert task["attempts"] == 1
    assert task["error"]["reason"] == "DEADLINE_EXCEEDED"


def test_cancel_reaches_the_running_worker(slow_stack: Stack) -> None:
    with httpx.Client(base_url=slow_stack.gateway_url) as client:
        task_id = submit(client).json()["id"]
        wait_status(client, task_id, {"running"})
        response = client.post(f"/v1/tasks/{task_id}/cancel", json={"reason": "test"})
        assert response.status_code == 200
        assert response.json()["status"] == "cancelled"
        # The worker stops the agent well before its ten-second answer.
        deadline = time.monotonic() + 5
        while 'outcome="cancelled"' not in worker_outcomes(slow_stack):
            assert time.monotonic() < deadline, "the worker never reported the cancellation"
            time.sleep(0.1)
        assert client.get(f"/v1/tasks/{task_id}").json()["status"] == "cancelled"
        again = client.post(f"/v1/tasks/{task_id}/cancel", json={})
        assert again.status_code == 409
        assert again.json()["reason"] == "TASK_FINISHED"


def test_full_queue_answers_429_with_retry_after(slow_stack: Stack) -> None:
    with httpx.Client(base_url=slow_stack.gateway_url) as client:
        running = submit(client).json()["id"]
        wait_status(client, running, {"running"})
        waiting = []
        for _ in range(5):
            response = submit(client)
            if response.status_code == 429:
                break
            assert response.status_code == 202, response.text
            waiting.append(response.json()["id"])
        else:
            raise AssertionError("the queue never filled")
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["reason"] == "QUEUE_FULL"
        assert float(response.headers["retry-after"]) > 0
        # The only worker slot is busy; the queue holds its bound of two.
        assert len(waiting) == 2
        for task_id in [running, *waiting]:
            client.post(f"/v1/tasks/{task_id}/cancel", json={})
