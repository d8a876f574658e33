"""The worker against a fake orchestrator: a real gRPC server on a loopback port."""

from __future__ import annotations

import asyncio
import time

import pytest
from google.protobuf import json_format, struct_pb2

from taskloom.agents.providers import TextDelta
from taskloom.agents.providers.simulated import SimulatedProvider, simulated_answer
from taskloom.v1 import common_pb2, worker_hub_pb2

pytestmark = pytest.mark.asyncio

WAIT_S = 10.0


def assignment(task_id: str, prompt: str) -> worker_hub_pb2.Assignment:
    task = common_pb2.Task(
        id=task_id,
        agent="assistant",
        input=struct_pb2.Value(string_value=prompt),
        labels={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
    )
    return worker_hub_pb2.Assignment(task=task, lease_id=f"lease-{task_id}", attempt=1)


async def test_registers_runs_assignment_and_streams_chunks_then_result(
    hub_server, worker_factory
) -> None:
    running = worker_factory(hub_server.addr, concurrency=3)
    session = await hub_server.hub.next_session()
    register = await session.recv("register")
    assert register.worker_id == "worker-under-test"
    assert register.concurrency == 3
    assert [a.name for a in register.agents] == ["assistant", "toolsmith"]
    assert register.agents[0].provider == "simulated"
    assert (await session.recv("credit")).credits == 3
    await asyncio.wait_for(running.worker.registered.wait(), WAIT_S)

    session.send(assignment=assignment("t1", "What is Taskloom?"))
    chunks = []
    while (msg := await session.recv("chunk", "result")) is not None:
        if isinstance(msg, worker_hub_pb2.TaskResult):
            result = msg
            break
        chunks.append(msg)
    assert [c.seq for c in chunks] == list(range(len(chunks)))
    assert chunks[-1].kind == common_pb2.CHUNK_KIND_USAGE  # then only the answer's text
    chunks = [c for c in chunks if c.kind == common_pb2.CHUNK_KIND_TEXT]
    assert {(c.task_id, c.lease_id) for c in chunks} == {("t1", "lease-t1")}
    expected = simulated_answer([{"role": "user", "content": "What is Taskloom?"}], "sim-1")
    assert "".join(c.text for c in chunks) == expected

    assert result.task_id == "t1" and result.lease_id == "lease-t1"
    assert not result.HasField("error")
    output = json_format.MessageToDict(result.output)
    assert output["text"] == expected
    assert output["text"].startswith("[simulated]")
    assert output["simulated"] is True and output["cached"] is False
    assert output["agent"] == "assistant" and output["provider"] == "simulated"
    # Tokens are coalesced: fewer chunks than tokens, none lost.
    assert 0 < len(chunks) < result.usage.completion_tokens
    assert (await session.recv("credit")).credits == 1


async def test_cancel_of_running_task_sends_cancelled_result_and_credit(
    hub_server, worker_factory
) -> None:
    slow = SimulatedProvider(latency_s=0, tokens_per_second=2)
    running = worker_factory(hub_server.addr, provider=slow)
    session = await hub_server.hub.next_session()
    await session.recv("credit")
    session.send(assignment=assignment("t2", "slow please"))
    await session.recv("chunk")  # the task is running
    session.send(cancel=worker_hub_pb2.CancelAssignment(task_id="t2", lease_id="lease-t2"))
    result = await session.recv("result")
    assert result.task_id == "t2"
    assert result.error.reason == common_pb2.ERROR_REASON_CANCELLED
    assert not result.HasField("output")
    assert (await session.recv("credit")).credits == 1
    assert running.worker.running_lease_ids() == []


@pytest.mark.parametrize("heartbeat_interval_s", [0.05])
async def test_heartbeat_carries_running_lease_ids(hub_server, worker_factory) -> None:
    slow = SimulatedProvider(latency_s=0, tokens_per_second=2)
    worker_factory(hub_server.addr, provider=slow)
    session = await hub_server.hub.next_session()
    await session.recv("credit")
    session.send(assignment=assignment("t3", "keep me alive"))
    await session.recv("chunk")
    while "lease-t3" not in (await session.recv("heartbeat")).lease_ids:
        pass
    session.send(cancel=worker_hub_pb2.CancelAssignment(task_id="t3", lease_id="lease-t3"))
    await session.recv("result")
    while (await session.recv("heartbeat")).lease_ids:
        pass  # once the task is over, heartbeats carry no lease


async def test_reconnects_after_orchestrator_restart(hub_server, worker_factory) -> None:
    running = worker_factory(hub_server.addr)
    await (await hub_server.hub.next_session()).recv("credit")
    await hub_server.stop()
    await hub_server.start()

    session = await hub_server.hub.next_session()
    register = await session.recv("register")
    assert register.worker_id == "worker-under-test"
    assert (await session.recv("credit")).credits == 4
    session.send(assignment=assignment("t4", "after restart"))
    result = await session.recv("result")
    assert json_format.MessageToDict(result.output)["text"].startswith("[simulated]")
    assert running.worker.sessions == 2


async def test_stop_drains_running_task_then_half_closes(hub_server, worker_factory) -> None:
    paced = SimulatedProvider(latency_s=0, tokens_per_second=40)
    running = worker_factory(hub_server.addr, provider=paced)
    session = await hub_server.hub.next_session()
    await session.recv("credit")
    session.send(assignment=assignment("t5", "finish me"))
    await session.recv("chunk")
    running.stop.set()
    assert await session.recv("drain") is not None
    result = await session.recv("result")
    assert not result.HasField("error")
    # No credit after a drain: the next thing the hub sees is the half-close.
    assert await session.recv("credit") is None
    await asyncio.wait_for(running.task, WAIT_S)
    assert not running.worker.ready


class GatedProvider:
    """Streams "hello ", then waits for `gate` before "world"; records when it was stopped."""

    name = "simulated"

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.stopped = 0

    async def stream(self, messages, model, params, tools=()):  # type: ignore[no-untyped-def]
        try:
            yield TextDelta("hello ")
            await self.gate.wait()
            yield TextDelta("world")
        finally:
            if not self.gate.is_set():
                self.stopped += 1

    async def aclose(self) -> None:
        return None


async def test_deadline_stops_the_agent_and_reports_a_final_timeout(
    hub_server, worker_factory
) -> None:
    provider = GatedProvider()  # never released: only the deadline ends the run
    running = worker_factory(hub_server.addr, provider=provider)
    session = await hub_server.hub.next_session()
    await session.recv("credit")
    timed = assignment("t6", "too slow")
    timed.deadline.FromNanoseconds(time.time_ns() + 200_000_000)
    session.send(assignment=timed)

    result = await session.recv("result")
    assert result.task_id == "t6" and result.lease_id == "lease-t6"
    assert result.error.reason == common_pb2.ERROR_REASON_DEADLINE_EXCEEDED
    assert result.error.retryable is False  # the orchestrator ends the task TIMED_OUT
    assert not result.HasField("output")
    assert provider.stopped == 1  # the agent was cancelled, not left running
    assert (await session.recv("credit", "chunk")).credits == 1
    assert running.worker.running_lease_ids() == []


async def test_deadline_already_passed_still_sends_result_and_credit(
    hub_server, worker_factory
) -> None:
    worker_factory(hub_server.addr, provider=GatedProvider())
    session = await hub_server.hub.next_session()
    await session.recv("credit")
    late = assignment("t7", "late")
    late.deadline.FromSeconds(int(time.time()) - 60)
    session.send(assignment=late)
    result = await session.recv("result")
    assert result.error.reason == common_pb2.ERROR_REASON_DEADLINE_EXCEEDED
    assert not result.error.retryable
    assert (await session.recv("credit")).credits == 1


async def test_cancel_of_an_unknown_lease_leaves_a_newer_attempt_running(
    hub_server, worker_factory
) -> None:
    provider = GatedProvider()
    running = worker_factory(hub_server.addr, provider=provider)
    session = await hub_server.hub.next_session()
    await session.recv("credit")
    newer = assignment("t8", "attempt two")
    newer.lease_id, newer.attempt = "lease-t8-attempt2", 2
    session.send(assignment=newer)
    session.send(assignment=assignment("t9", "bystander"))
    while len(running.worker.running_lease_ids()) < 2:
        await session.recv("chunk")
    # A cancel aimed at the first attempt's lease, then one for the bystander: once the
    # bystander's result is back, the worker has handled the stale cancel as well.
    session.send(cancel=worker_hub_pb2.CancelAssignment(task_id="t8", lease_id="lease-t8"))
    session.send(cancel=worker_hub_pb2.CancelAssignment(task_id="t9", lease_id="lease-t9"))
    bystander = await session.recv("result")
    assert bystander.task_id == "t9"
    assert bystander.error.reason == common_pb2.ERROR_REASON_CANCELLED
    assert running.worker.running_lease_ids() == ["lease-t8-attempt2"]

    provider.gate.set()
    result = await session.recv("result")
    assert result.lease_id == "lease-t8-attempt2"
    assert not result.HasField("error")
    assert json_format.MessageToDict(result.output)["text"] == "hello world"
