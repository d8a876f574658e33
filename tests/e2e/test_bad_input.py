"""Bad input gets a clear problem+json error and changes nothing."""

from __future__ import annotations

from pathlib import Path

import httpx

from taskloom.sdk.localstack import Ports, Stack, StackConfig, free_port

PROBLEM = "application/problem+json"


def task_count(client: httpx.Client) -> int:
    count, token = 0, None
    while True:
        params = {"page_size": 1000, **({"page_token": token} if token else {})}
        page = client.get("/v1/tasks", params=params).json()
        count += len(page["tasks"])
        token = page.get("next_page_token")
        if not token:
            return count


def test_task_without_agent_is_422_naming_the_field(gateway: str) -> None:
    with httpx.Client(base_url=gateway) as client:
        before = task_count(client)
        response = client.post("/v1/tasks", json={"input": "hello"})
        assert response.status_code == 422
        assert response.headers["content-type"].startswith(PROBLEM)
        problem = response.json()
        assert problem["status"] == 422
        assert any(err["field"] == "agent" for err in problem["errors"]), problem
        assert task_count(client) == before


def test_unknown_agent_is_404(gateway: str) -> None:
    with httpx.Client(base_url=gateway) as client:
        before = task_count(client)
        response = client.post("/v1/tasks", json={"agent": "no-such-agent", "input": "x"})
        assert response.status_code == 404
        assert response.headers["content-type"].startswith(PROBLEM)
        problem = response.json()
        assert problem["reason"] == "AGENT_NOT_FOUND"
        assert "no-such-agent" in problem["detail"]
        assert task_count(client) == before


def test_unknown_task_is_404(gateway: str) -> None:
    response = httpx.get(f"{gateway}/v1/tasks/does-not-exist")
    assert response.status_code == 404
    assert response.json()["reason"] == "TASK_NOT_FOUND"


def test_orchestrator_down_is_503_without_a_stack_trace(tmp_path: Path, stack: Stack) -> None:
    # A second gateway, pointed at a port where nothing listens.
    cfg = StackConfig(
        bin_dir=stack.cfg.bin_dir,
        state_dir=tmp_path,
        ports=Ports.random(),
        only=("gateway",),
        env_overrides={"gateway": {"TASKLOOM_ORCHESTRATOR_ADDR": f"127.0.0.1:{free_port()}"}},
        ready_path="/healthz",
    )
    with Stack(cfg) as lone:
        url = lone.gateway_url
        response = httpx.post(f"{url}/v1/tasks", json={"agent": "assistant", "input": "x"})
        assert response.status_code == 503
        assert response.headers["content-type"].startswith(PROBLEM)
        assert response.json()["status"] == 503
        assert "Traceback" not in response.text
        assert httpx.get(f"{url}/readyz").status_code == 503
