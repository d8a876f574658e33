"""Cost accounting end to end on the real binaries: tasks of two tenants on a priced
endpoint carry their cost in their results, the worker's /metrics counts it by tenant, and
`GET /v1/usage` answers from the orchestrator's rollups, each tenant's key seeing its own."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from taskloom.sdk.localstack import Ports, Stack, StackConfig

REPO = Path(__file__).resolve().parents[2]
PRICE = {"input": 2.0, "output": 8.0}  # USD per million tokens
KEYS = {"acme": "key-acme", "globex": "key-globex"}


@pytest.fixture(scope="module")
def priced_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    agents = tmp_path_factory.mktemp("agents")
    (agents / "buyer.yaml").write_text(
        "name: buyer\nprovider: priced-sim\nmodel: sim-1\ncache: false\n"
    )
    endpoints = {"priced-sim": {"kind": "simulated", "prices": {"sim-1": PRICE}}}
    cfg = StackConfig(
        bin_dir=REPO / "bin",
        state_dir=tmp_path_factory.mktemp("usage-stack"),
        ports=Ports.random(),
        worker_env={
            "TASKLOOM_SIM_LATENCY_MS": "0",
            "TASKLOOM_SIM_TOKENS_PER_SECOND": "0",
            "TASKLOOM_AGENTS_DIR": str(agents),
            "TASKLOOM_ENDPOINTS": json.dumps(endpoints),
        },
        env_overrides={
            "gateway": {"TASKLOOM_API_KEYS": ",".join(f"{k}={t}" for t, k in KEYS.items())}
        },
    )
    stack = Stack(cfg)
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


def run_task(client: httpx.Client, tenant: str, prompt: str) -> dict[str, Any]:
    headers = {"X-API-Key": KEYS[tenant]}
    created = client.post("/v1/tasks", json={"agent": "buyer", "input": prompt}, headers=headers)
    assert created.status_code == 202, created.text
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        task: dict[str, Any] = client.get(
            f"/v1/tasks/{created.json()['id']}", headers=headers
        ).json()
        if task["status"] not in ("queued", "running"):
            return task
        time.sleep(0.05)
    raise AssertionError(f"task did not finish: {task}")


def usage(client: httpx.Client, tenant: str, **params: str) -> dict[str, Any]:
    reply = client.get("/v1/usage", params=params, headers={"X-API-Key": KEYS[tenant]})
    assert reply.status_code == 200, reply.text
    report: dict[str, Any] = reply.json()
    return report


def test_cost_is_in_results_metrics_and_usage_reports(priced_stack: Stack) -> None:
    with httpx.Client(base_url=priced_stack.gateway_url, timeout=30) as client:
        tasks = [
            run_task(client, "acme", "first question"),
            run_task(client, "acme", "a second, longer question for the model"),
            run_task(client, "globex", "someone else's question"),
        ]
        for task in tasks:
            assert task["status"] == "succeeded", task
            spent = task["result"]["usage"]
            expected = (spent["prompt_tokens"] * PRICE["input"]) + (
                spent["completion_tokens"] * PRICE["output"]
            )
            assert spent["cost_usd"] == pytest.approx(expected / 1e6)
            assert spent["models"][0]["endpoint"] == "priced-sim"
        acme_cost = sum(t["result"]["usage"]["cost_usd"] for t in tasks[:2])
        acme_tokens = sum(
            t["result"]["usage"]["prompt_tokens"] + t["result"]["usage"]["completion_tokens"]
            for t in tasks[:2]
        )

        # The orchestrator writes its rollups once a second.
        deadline = time.monotonic() + 30
        while not (rows := usage(client, "acme", group_by="agent")["rows"]):
            assert time.monotonic() < deadline, "no usage reached the rollups"
            time.sleep(0.2)
        assert [r["agent"] for r in rows] == ["buyer"]
        assert rows[0]["calls"] == 2
        assert rows[0]["prompt_tokens"] + rows[0]["completion_tokens"] == acme_tokens
        assert rows[0]["cost_usd"] == pytest.approx(acme_cost)

        by_tenant = usage(client, "acme")["rows"]
        assert [r["tenant"] for r in by_tenant] == ["acme"]  # never globex's
        by_model = usage(client, "globex", group_by="model")["rows"]
        assert [(r["endpoint"], r["model"], r["calls"]) for r in by_model] == [
            ("priced-sim", "sim-1", 1)
        ]
        assert (
            usage(client, "acme", since="2000-01-01T00:00:00Z", until="2000-01-02T00:00:00Z")[
                "rows"
            ]
            == []
        )

    worker = next(s for s in priced_stack.services if s.name.startswith("worker"))
    metrics = httpx.get(f"{worker.base_url}/metrics").text
    line = next(
        m
        for m in metrics.splitlines()
        if m.startswith("taskloom_agent_llm_cost_usd_total{") and 'tenant="acme"' in m
    )
    assert float(line.rsplit(" ", 1)[1]) == pytest.approx(acme_cost)
