"""The `taskloom` command (its installed entry point, as a process) against the real stack:
bin/taskloom-orchestrator with the echo worker, and the gateway served by uvicorn."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskloom.gateway.config import Settings
from taskloom.testing.real_orchestrator import serve_real_orchestrator
from taskloom.testing.servers import serve_gateway

BIN = Path(__file__).resolve().parents[3] / "bin"
WORKFLOW = """
name: cli-run
steps:
  - {id: first, agent: echo, input: one two}
  - {id: second, agent: echo, input: three, depends_on: [first]}
"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("orchestrator")
    with (
        serve_real_orchestrator(BIN / "taskloom-orchestrator", data) as addr,
        serve_gateway(Settings(orchestrator_addr=addr, api_keys="k1=acme")) as url,
    ):
        yield url


def taskloom(gateway: str, *args: str, key: str = "k1") -> subprocess.CompletedProcess[str]:
    entry = str(Path(__file__).resolve().parents[3] / ".venv/bin/taskloom")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKLOOM_")}
    env.update(TASKLOOM_URL=gateway, TASKLOOM_API_KEY=key, COLUMNS="200")
    return subprocess.run([entry, *args], env=env, capture_output=True, text=True, timeout=120)


def test_submit_wait_shows_the_stream_then_prints_the_task(gateway: str) -> None:
    done = taskloom(gateway, "submit", "echo", "alpha beta gamma", "--wait")
    assert done.returncode == 0, done.stderr
    task = json.loads(done.stdout)
    assert (task["status"], task["result"]) == ("succeeded", {"echo": "alpha beta gamma"})
    live = done.stderr
    assert live.index("alpha") < live.index("beta") < live.index("gamma") < live.rindex("succeeded")


def test_tasks_list_as_a_table_and_as_json(gateway: str) -> None:
    submitted = json.loads(taskloom(gateway, "submit", "echo", "listed").stdout)
    table = taskloom(gateway, "tasks", "list", "--agent", "echo")
    assert table.returncode == 0, table.stderr
    assert submitted["id"] in table.stdout and "acme" in table.stdout
    lines = taskloom(gateway, "tasks", "list", "--limit", "1", "--json").stdout.splitlines()
    assert [json.loads(line)["id"] for line in lines] == [submitted["id"]]


def test_workflows_run_watch_shows_the_steps(gateway: str, tmp_path: Path) -> None:
    spec = tmp_path / "cli-run.yaml"
    spec.write_text(WORKFLOW)
    run = taskloom(gateway, "workflows", "run", str(spec), "--watch")
    assert run.returncode == 0, run.stderr
    workflow = json.loads(run.stdout)
    assert workflow["status"] == "succeeded"
    assert [s["step_id"] for s in workflow["steps"]] == ["first", "second"]
    assert run.stderr.index("step first") < run.stderr.index("step second")


def test_a_refused_key_exits_1_with_the_problem(gateway: str) -> None:
    refused = taskloom(gateway, "tasks", "list", key="wrong")
    assert refused.returncode == 1
    assert json.loads(refused.stderr)["reason"] == "UNAUTHENTICATED"


def test_loadtest_follows_every_task_to_its_end(gateway: str) -> None:
    run = taskloom(gateway, "loadtest", "echo", "load", "--tasks", "12", "--concurrency", "4")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert (report["tasks"], report["succeeded"], report["failed"], report["errors"]) == (
        12,
        12,
        0,
        0,
    )
    assert 0 < report["latency_p50_ms"] <= report["latency_p95_ms"] <= report["latency_p99_ms"]
    assert "tasks per second" in run.stderr
    assert taskloom(gateway, "loadtest", "echo", "x", "--tasks", "0").returncode == 2
