"""Agents that act, end to end through REST on the real binaries: the shipped tool-loop
agent (calculator and the python sandbox), an agent calling another as a tool, a handoff,
a cycle refused, and a chain of three agents on one worker of concurrency 1 (the waiting
parents lend their credit, so the chain does not deadlock).

They run on a stack of their own (orchestrator, one worker of concurrency 1, gateway)
with the test agents of tests/e2e/agents/, scripted through the task input.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from taskloom.sdk.client import TaskloomClient
from taskloom.sdk.localstack import Ports, Stack, StackConfig
from taskloom.sdk.streams import collect_stream

AGENTS_DIR = Path(__file__).parent / "agents"
TERMINAL = {"succeeded", "failed", "cancelled", "timed_out"}


@pytest.fixture(scope="module")
def agents_stack(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    cfg = StackConfig(
        bin_dir=stack.cfg.bin_dir,
        state_dir=tmp_path_factory.mktemp("agents-stack"),
        ports=Ports.random(),
        only=("orchestrator", "worker", "gateway"),
        env_overrides={
            "worker": {
                "TASKLOOM_AGENTS_DIR": str(AGENTS_DIR),
                "TASKLOOM_CONCURRENCY": "1",
                "TASKLOOM_SIM_LATENCY_MS": "0",
                "TASKLOOM_SIM_TOKENS_PER_SECOND": "0",
                "TASKLOOM_CACHE_ADDR": "",
                "TASKLOOM_METRICS_ADDR": "",
            },
        },
    )
    with Stack(cfg) as running:
        yield running


@pytest.fixture
def client(agents_stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=agents_stack.gateway_url, timeout=10.0) as http:
        yield http


def run(client: httpx.Client, agent: str, task_input: Any, timeout: float = 60.0) -> dict[str, Any]:
    response = client.post("/v1/tasks", json={"agent": agent, "input": task_input})
    assert response.status_code == 202, response.text
    task_id = response.json()["id"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task: dict[str, Any] = client.get(f"/v1/tasks/{task_id}").json()
        if task["status"] in TERMINAL:
            return task
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} did not finish: {task}")


def call(tool: str, **arguments: Any) -> dict[str, Any]:
    """A simulated turn that calls one tool."""
    return {"tool_calls": [{"name": tool, "arguments": arguments}]}


def children_of(client: httpx.Client, parent: dict[str, Any]) -> list[dict[str, Any]]:
    tasks: list[dict[str, Any]] = client.get("/v1/tasks", params={"page_size": 100}).json()["tasks"]
    return [t for t in tasks if t["labels"].get("taskloom.parent_task_id") == parent["id"]]


def test_the_shipped_toolsmith_runs_a_tool_loop(client: httpx.Client) -> None:
    task = run(client, "toolsmith", "What is 6 * 7, and the sum of 0..9?")
    assert task["status"] == "succeeded", task
    result = task["result"]
    assert result["simulated"] is True and result["iterations"] == 2
    assert result["tool_calls"] == [
        {"name": "calculator", "ok": True, "cached": False},
        {"name": "python", "ok": True, "cached": False},
    ]
    assert 'calculator -> {"result":42}' in result["text"]
    assert 'python -> {"stdout":"45\\n"' in result["text"]


def test_an_agent_calls_another_as_a_child_task(client: httpx.Client) -> None:
    script = [call("agent", agent="specialist", input="Explain leases."), {"text": "Done."}]
    task = run(
        client, "delegator", {"prompt": "Ask the specialist.", "simulate": {"script": script}}
    )
    assert task["status"] == "succeeded", task
    assert task["result"]["tool_calls"] == [{"name": "agent", "ok": True, "cached": False}]
    [child] = children_of(client, task)
    assert child["agent"] == "specialist" and child["status"] == "succeeded"
    assert child["tenant"] == task["tenant"]
    assert child["labels"]["taskloom.agent_depth"] == "1"
    assert child["labels"]["taskloom.agent_chain"] == "delegator"
    assert 'You asked: "Explain leases."' in child["result"]["text"]


def test_a_handoff_lets_the_other_agent_answer_the_task(client: httpx.Client) -> None:
    script = [call("handoff", agent="specialist", message="Please take over: explain leases.")]
    task = run(
        client, "delegator", {"prompt": "I need the specialist.", "simulate": {"script": script}}
    )
    assert task["status"] == "succeeded", task
    result = task["result"]
    assert result["agent"] == "specialist"
    assert result["handoff"]["from"] == "delegator" and result["handoff"]["to"] == "specialist"
    [child] = children_of(client, task)
    assert result["handoff"]["task_id"] == child["id"]
    assert result["text"] == child["result"]["text"]
    assert 'You asked: "Please take over: explain leases."' in result["text"]
    # The specialist saw the conversation, not only the note.
    assert child["input"]["messages"][0] == {"role": "user", "content": "I need the specialist."}


def test_a_cycle_of_agents_is_refused(client: httpx.Client) -> None:
    back = call("agent", agent="delegator", input="and back again")
    inner = {"prompt": "relay it", "simulate": {"script": [back]}}
    script = [call("agent", agent="relay", input=inner)]
    task = run(client, "delegator", {"prompt": "go round", "simulate": {"script": script}})
    assert task["status"] == "succeeded", task
    [child] = children_of(client, task)
    assert child["agent"] == "relay"
    assert child["result"]["tool_calls"] == [{"name": "agent", "ok": False, "cached": False}]
    assert (
        "calling agent 'delegator' would form a cycle (delegator -> relay -> delegator)"
        in (child["result"]["text"])
    )
    assert children_of(client, child) == []  # nothing was started for the cycle


def test_a_chain_of_three_agents_runs_on_one_worker_of_concurrency_one(
    client: httpx.Client,
) -> None:
    innermost = {"prompt": "the end of the chain"}
    middle = {
        "prompt": "pass it on",
        "simulate": {"script": [call("agent", agent="specialist", input=innermost)]},
    }
    script = [call("agent", agent="relay", input=middle)]
    task = run(client, "delegator", {"prompt": "start a chain", "simulate": {"script": script}})
    assert task["status"] == "succeeded", task
    [relay] = children_of(client, task)
    [specialist] = children_of(client, relay)
    assert specialist["labels"]["taskloom.agent_depth"] == "2"
    assert specialist["labels"]["taskloom.agent_chain"] == "delegator,relay"
    assert relay["status"] == specialist["status"] == "succeeded"
    assert 'You asked: "the end of the chain"' in specialist["result"]["text"]
    assert relay["id"] in json.dumps(task["result"])  # the parent saw its child's answer


def test_typed_chunks_stream_through_sse_and_collect_into_a_result(
    client: httpx.Client,
) -> None:
    task_id = client.post("/v1/tasks", json={"agent": "toolsmith", "input": "6 * 7?"}).json()["id"]
    with TaskloomClient(str(client.base_url)) as sdk:
        run = collect_stream(sdk.stream_events(task_id))
    assert run.status == "succeeded" and run.task is not None
    assert run.thoughts == "I will compute with both tools."
    assert [c["name"] for c in run.tool_calls] == ["calculator", "python"]
    assert [r["ok"] for r in run.tool_results] == [True, True]
    assert run.text == run.task["result"]["text"]
    assert run.usage["completion_tokens"] == run.task["usage"]["completion_tokens"]
