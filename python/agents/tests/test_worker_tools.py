"""The tool loop inside the worker, against a fake orchestrator on a real gRPC port: a
scripted simulated agent, a task lending its credit while it waits, and a sandbox attack
that ends in a tool error while the worker goes on serving other tasks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from google.protobuf import json_format, struct_pb2

from taskloom.agents.catalog import load_catalog
from taskloom.agents.providers.simulated import SimulatedProvider
from taskloom.agents.runtime import AgentRuntime
from taskloom.agents.tools import ToolRegistry, builtin_factories
from taskloom.agents.tools.sandbox import SandboxConfig, SandboxPool, default_python
from taskloom.v1 import common_pb2, worker_hub_pb2

pytestmark = pytest.mark.asyncio

AGENTS = {
    "lender.yaml": """\
name: lender
model: sim-1
cache: false
tools:
  - {name: lend, function: "tools_for_tests:lend_credit", description: Wait., parameters: {}}
simulate: {script: [{tool_calls: [{name: lend, arguments: {}}]}]}
""",
    "coder.yaml": """\
name: coder
model: sim-1
cache: false
tools: [python, calculator]
sandbox: {cpu_s: 1, wall_s: 30}
""",
}


def assignment(task_id: str, agent: str, task_input: Any) -> worker_hub_pb2.Assignment:
    value = struct_pb2.Value()
    json_format.ParseDict(task_input, value)
    task = common_pb2.Task(id=task_id, agent=agent, input=value, tenant="acme")
    return worker_hub_pb2.Assignment(task=task, lease_id=f"lease-{task_id}", attempt=1)


@pytest_asyncio.fixture
async def runtime(tmp_path: Path, telemetry, test_tools_importable):  # type: ignore[no-untyped-def]
    import tools_for_tests

    tools_for_tests.reset()
    for name, text in AGENTS.items():
        (tmp_path / name).write_text(text)
    pool = SandboxPool(SandboxConfig(python=default_python(), pool_size=1))
    provider = SimulatedProvider(latency_s=0, tokens_per_second=0)
    registry = ToolRegistry(builtin_factories(sandbox=pool))
    runtime = AgentRuntime(
        load_catalog([tmp_path]), {"simulated": provider}, telemetry, tools=registry
    )
    runtime.tools_module = tools_for_tests  # type: ignore[attr-defined]
    yield runtime
    await pool.aclose()


async def result_of(session: Any, task_id: str) -> Any:
    while (result := await session.recv("result")).task_id != task_id:
        pass
    return result


async def test_a_scripted_tool_loop_runs_in_the_worker(hub_server, worker_factory, runtime) -> None:
    worker_factory(hub_server.addr, runtime=runtime)
    session = await hub_server.hub.next_session()
    await session.recv("credit")
    script = [
        {"tool_calls": [{"name": "calculator", "arguments": {"expression": "6*7"}}]},
        {"text": "The answer is 42.", "completion_tokens": 5},
    ]
    session.send(
        assignment=assignment("t1", "coder", {"prompt": "6*7?", "simulate": {"script": script}})
    )
    result = await result_of(session, "t1")
    output = json_format.MessageToDict(result.output)
    assert output["text"] == "[simulated] The answer is 42."
    assert output["tool_calls"] == [{"name": "calculator", "ok": True, "cached": False}]
    assert output["iterations"] == 2 and output["simulated"] is True
    assert result.usage.completion_tokens == 1 + 5  # the tool call turn, then the answer


async def test_a_scripted_failure_fails_the_task_as_scripted(
    hub_server, worker_factory, runtime
) -> None:
    worker_factory(hub_server.addr, runtime=runtime)
    session = await hub_server.hub.next_session()
    await session.recv("credit")
    script = [{"error": "overloaded", "retryable": True}]
    session.send(
        assignment=assignment("t2", "coder", {"prompt": "x", "simulate": {"script": script}})
    )
    result = await result_of(session, "t2")
    assert result.error.reason == common_pb2.ERROR_REASON_AGENT_ERROR
    assert result.error.message == "simulated failure: overloaded"
    assert result.error.retryable is True


async def test_a_waiting_task_lends_its_credit_once_and_does_not_take_it_back(
    hub_server, worker_factory, runtime
) -> None:
    worker_factory(hub_server.addr, runtime=runtime, concurrency=1)
    session = await hub_server.hub.next_session()
    assert (await session.recv("credit")).credits == 1
    session.send(assignment=assignment("t3", "lender", "wait"))
    assert (await session.recv("credit")).credits == 1  # lent while the tool waits
    # The lent credit runs another task on this worker of concurrency 1.
    session.send(assignment=assignment("t4", "coder", "meanwhile"))
    assert not (await result_of(session, "t4")).HasField("error")
    assert (await session.recv("credit")).credits == 1  # t4's own credit comes back

    runtime.tools_module.released.set()
    assert not (await result_of(session, "t3")).HasField("error")
    session.send(assignment=assignment("t5", "coder", "after"))
    await result_of(session, "t5")
    assert (await session.recv("credit")).credits == 1
    # After t3 only t5's credit came back: t3 did not grant the credit it had lent.
    after_t3 = session.received[
        next(
            i
            for i, m in enumerate(session.received)
            if m.WhichOneof("msg") == "result" and m.result.task_id == "t3"
        ) :
    ]
    assert [m.credit.credits for m in after_t3 if m.WhichOneof("msg") == "credit"] == [1]


async def test_an_endless_loop_in_the_sandbox_is_a_tool_error_and_others_are_served(
    hub_server, worker_factory, runtime
) -> None:
    worker_factory(hub_server.addr, runtime=runtime)
    session = await hub_server.hub.next_session()
    await session.recv("credit")
    attack = [{"tool_calls": [{"name": "python", "arguments": {"code": "while True:\n    pass"}}]}]
    session.send(
        assignment=assignment("bad", "coder", {"prompt": "spin", "simulate": {"script": attack}})
    )
    session.send(assignment=assignment("good", "coder", "hello"))
    results = {r.task_id: r for r in [await session.recv("result"), await session.recv("result")]}
    good = json_format.MessageToDict(results["good"].output)
    assert good["text"].startswith("[simulated]")
    bad = json_format.MessageToDict(results["bad"].output)
    assert bad["tool_calls"] == [{"name": "python", "ok": False, "cached": False}]
    assert "CPU-time limit of 1 s" in bad["text"]  # the model saw the tool error
