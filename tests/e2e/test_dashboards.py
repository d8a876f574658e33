"""The Grafana dashboards and the Prometheus configuration match what the services expose.

Every metric and grouping label the dashboards query must exist on some service's
/metrics, and a real Prometheus scraping the stack must evaluate every panel's query.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import yaml

from taskloom.sdk.localstack import Stack
from taskloom.testing.prometheus_server import prometheus_server
from taskloom.v1 import vector_pb2, vector_pb2_grpc

REPO = Path(__file__).resolve().parents[2]
METRICS_DOC = REPO / "docs/metrics.md"
DASHBOARDS = sorted((REPO / "deploy/grafana/dashboards").glob("*.json"))
METRIC = re.compile(r"\btaskloom_[a-z0-9_]+")
BY = re.compile(r"\bby \(([^)]*)\)")
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="')


def dashboard_queries() -> list[str]:
    """Every panel query of every dashboard (the overview and one per area)."""
    assert len(DASHBOARDS) > 1, DASHBOARDS
    panels = [p for path in DASHBOARDS for p in json.loads(path.read_text())["panels"]]
    return [t["expr"] for p in panels for t in p.get("targets", [])]


def exposed(stack: Stack) -> dict[str, set[str]]:
    """Sample name -> label names seen on it, over every service's /metrics."""
    seen: dict[str, set[str]] = {}
    for svc in stack.services:
        for line in httpx.get(f"{svc.base_url}/metrics").text.splitlines():
            match = SAMPLE.match(line)
            if line.startswith("#") or not match:
                continue
            labels = set(LABEL.findall(match.group(2) or ""))
            seen.setdefault(match.group(1), set()).update(labels)
    return seen


def run_one_task(gateway: str) -> None:
    """Runs a task and a one-step workflow, following their event streams to the end."""
    with httpx.Client(base_url=gateway, timeout=30) as client:
        task_id = client.post("/v1/tasks", json={"agent": "assistant", "input": "dash"}).json()[
            "id"
        ]
        workflow_id = client.post(
            "/v1/workflows", json={"steps": [{"id": "a", "agent": "assistant", "input": "wf"}]}
        ).json()["id"]
        for path in (f"/v1/tasks/{task_id}/events", f"/v1/workflows/{workflow_id}/events"):
            with client.stream("GET", path) as events:
                assert "event: done" in list(events.iter_lines())


def call_vector(stack: Stack) -> None:
    """One vector request, so its request counter has a series (the vector dashboard's)."""
    with grpc.insecure_channel(f"127.0.0.1:{stack.service('vector').grpc_port}") as channel:
        vector_pb2_grpc.VectorServiceStub(channel).ListCollections(
            vector_pb2.ListCollectionsRequest(), timeout=10
        )


@pytest.fixture(scope="module")
def seen(stack: Stack, gateway: str) -> dict[str, set[str]]:
    """What the services expose once a task, a workflow and a vector call ran and the
    worker reported them (to the metrics service, once a second)."""
    run_one_task(gateway)
    call_vector(stack)
    deadline = time.monotonic() + 10
    while "taskloom_agent_tasks_total" not in (found := exposed(stack)):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    return found


def test_every_dashboard_metric_and_label_is_exposed(seen: dict[str, set[str]]) -> None:
    missing = []
    for expr in dashboard_queries():
        names = METRIC.findall(expr)
        for name in names:
            if name not in seen:
                missing.append(f"{name} (in {expr})")
        for group in BY.findall(expr):
            for label in (lab.strip() for lab in group.split(",")):
                if label != "le" and not any(label in seen.get(n, set()) for n in names):
                    missing.append(f"label {label} of {names} (in {expr})")
    assert missing == []


def test_every_exposed_metric_is_documented(seen: dict[str, set[str]]) -> None:
    """docs/metrics.md lists every taskloom_ metric the stack's services expose."""
    documented = set(re.findall(r"^\| `(taskloom_[a-z0-9_]+)`", METRICS_DOC.read_text(), re.M))
    assert len(documented) > 40, documented
    undocumented = set()
    for sample in (name for name in seen if name.startswith("taskloom_")):
        family = re.sub(r"_(bucket|count|sum)$", "", sample)
        if sample.endswith("_created") or sample in documented or family in documented:
            continue
        undocumented.add(sample)
    assert undocumented == set()


# Alerts on metrics this stack does not produce yet (none: the worker records LLM request
# latency since #14). Checked to be absent, so this list has to shrink when they arrive.
ALERTS_WITHOUT_DATA: set[str] = set()


def without_threshold(expr: str) -> str:
    """The left operand of an alert's first comparison outside brackets: what it compares."""
    depth = 0
    for i, char in enumerate(expr):
        depth += char in "([{"
        depth -= char in ")]}"
        if depth == 0 and char in "<>=!" and expr[i + 1 : i + 2] in ("=", " "):
            return expr[:i].strip()
    raise AssertionError(f"no comparison in {expr!r}")


def alert_expressions() -> dict[str, str]:
    groups = yaml.safe_load((REPO / "deploy/prometheus/alerts.yml").read_text())["groups"]
    return {r["alert"]: without_threshold(r["expr"]) for g in groups for r in g["rules"]}


def prometheus_query(api: str, expr: str) -> list[dict[str, Any]]:
    reply = httpx.get(f"{api}/query", params={"query": expr}).json()
    assert reply["status"] == "success", (expr, reply)
    result: list[dict[str, Any]] = reply["data"]["result"]
    return result


def test_prometheus_scrapes_every_service_and_evaluates_the_dashboard(
    stack: Stack, gateway: str, tmp_path: Path
) -> None:
    local = yaml.safe_load((REPO / "deploy/prometheus/prometheus-local.yml").read_text())
    # One job per service, as in prometheus.yml: the stack's ports instead of the defaults.
    jobs = {job["job_name"]: job for job in local["scrape_configs"]}
    assert set(jobs) == {svc.name for svc in stack.services}
    for svc in stack.services:
        jobs[svc.name]["static_configs"] = [{"targets": [svc.base_url.removeprefix("http://")]}]
    local["global"]["scrape_interval"] = "1s"
    local["rule_files"] = [str(REPO / "deploy/prometheus/alerts.yml")]
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump(local))
    with prometheus_server(config) as api:
        deadline = time.monotonic() + 60
        up: dict[str, str] = {}
        while time.monotonic() < deadline:
            run_one_task(gateway)
            up = {r["metric"]["instance"]: r["value"][1] for r in prometheus_query(api, "up")}
            if len(up) == len(stack.services) and set(up.values()) == {"1"}:
                break
            time.sleep(0.5)
        assert len(up) == len(stack.services) and set(up.values()) == {"1"}, up

        # Every panel shows data once a few tasks ran and two scrapes cover each rate.
        empty = dashboard_queries()
        deadline = time.monotonic() + 60
        while empty and time.monotonic() < deadline:
            run_one_task(gateway)
            call_vector(stack)
            time.sleep(1)
            empty = [expr for expr in empty if not prometheus_query(api, expr)]
        assert empty == []
        # Every alert watches something: its expression without the threshold has series.
        quiet = {
            name for name, expr in alert_expressions().items() if not prometheus_query(api, expr)
        }
        assert quiet == ALERTS_WITHOUT_DATA
        rules = httpx.get(f"{api}/rules").json()["data"]["groups"]
        assert rules and all(r["health"] != "err" for g in rules for r in g["rules"])
