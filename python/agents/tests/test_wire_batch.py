"""Batching on the WorkerHub stream: what queued while a message was being written goes
out as one ResultBatch; each task's order kept, nothing lost; assignment batches run."""

from __future__ import annotations

import pytest
from google.protobuf import struct_pb2

from taskloom.agents import wire_batch
from taskloom.agents.providers.simulated import simulated_answer
from taskloom.agents.wire_batch import batch_requests, unbatched
from taskloom.agents.worker import Worker, WorkerOptions
from taskloom.v1 import common_pb2, worker_hub_pb2

Req = worker_hub_pb2.SessionRequest


def chunk(task: str, seq: int, text: str = "x") -> Req:
    return Req(
        chunk=worker_hub_pb2.TaskChunk(task_id=task, lease_id=f"l-{task}", seq=seq, text=text)
    )


def result(task: str) -> Req:
    return Req(result=worker_hub_pb2.TaskResult(task_id=task, lease_id=f"l-{task}"))


def credit(n: int) -> Req:
    return Req(credit=worker_hub_pb2.CreditGrant(credits=n))


def per_task(msgs: list[Req]) -> dict[str, list[Req]]:
    """Each task's chunks and result in order: the order that must be kept."""
    out: dict[str, list[Req]] = {}
    for m in msgs:
        kind = m.WhichOneof("msg")
        if kind in ("chunk", "result"):
            out.setdefault(getattr(m, kind).task_id, []).append(m)
    return out


def test_a_run_becomes_one_batch_keeping_each_tasks_order_and_losing_nothing() -> None:
    sent = [chunk("a", 0), chunk("b", 0), chunk("a", 1), result("a"), credit(1)]
    sent += [chunk("b", 1), result("b"), credit(1), chunk("c", 0)]
    out = list(batch_requests(sent))
    assert [m.WhichOneof("msg") for m in out] == ["results"]
    applied = [m for b in out for m in unbatched(b)]
    assert per_task(applied) == per_task(sent)
    assert sum(m.credit.credits for m in applied if m.WhichOneof("msg") == "credit") == 2
    # Credits come after the results they followed, never before.
    kinds = [m.WhichOneof("msg") for m in applied]
    assert kinds.index("credit") > max(i for i, k in enumerate(kinds) if k == "result")


def test_other_messages_split_runs_and_a_lone_message_goes_out_as_it_is() -> None:
    heartbeat = Req(heartbeat=worker_hub_pb2.Heartbeat(lease_ids=["l-a"]))
    drain = Req(drain=worker_hub_pb2.Drain())
    sent = [chunk("a", 0), heartbeat, chunk("a", 1), result("a"), drain, credit(3)]
    out = list(batch_requests(sent))
    assert [m.WhichOneof("msg") for m in out] == [
        "chunk",
        "heartbeat",
        "results",
        "drain",
        "credit",
    ]
    assert out[0] == sent[0] and out[-1] == sent[-1]
    assert per_task([m for b in out for m in unbatched(b)]) == per_task(sent)


def test_a_batch_stays_under_the_byte_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wire_batch, "MAX_BATCH_BYTES", 200)
    sent = [chunk("a", i, "y" * 60) for i in range(10)] + [result("a")]
    out = list(batch_requests(sent))
    assert len(out) > 1
    assert all(m.ByteSize() <= 200 + 16 for m in out)  # the cap plus the batch's framing
    assert per_task([m for b in out for m in unbatched(b)]) == per_task(sent)


@pytest.mark.asyncio
async def test_the_worker_sends_what_queued_meanwhile_as_one_batch_then_half_closes(
    runtime_factory, telemetry
) -> None:
    worker = Worker(WorkerOptions("unused:1", "w"), runtime_factory(), telemetry)
    sent = [chunk("a", 0), chunk("a", 1), result("a"), credit(1)]
    for m in sent:
        worker._outbox.put_nowait(m)
    worker._outbox.put_nowait(None)  # the half-close ends the stream after them
    out = [m async for m in worker._requests()]
    assert [m.WhichOneof("msg") for m in out] == ["results"]
    assert [m for b in out for m in unbatched(b)] == sent


@pytest.mark.asyncio
async def test_an_assignment_batch_runs_every_task_and_results_come_back_whole(
    hub_server, worker_factory
) -> None:
    worker_factory(hub_server.addr, concurrency=8)
    session = await hub_server.hub.next_session()
    assert (await session.recv("register")).batches
    assert (await session.recv("credit")).credits == 8
    prompts = {f"t{i}": f"question number {i}" for i in range(8)}
    batch = worker_hub_pb2.AssignmentBatch()
    for task_id, prompt in prompts.items():
        task = common_pb2.Task(
            id=task_id, agent="assistant", input=struct_pb2.Value(string_value=prompt)
        )
        batch.assignments.add(task=task, lease_id=f"lease-{task_id}", attempt=1)
    session.send(assignments=batch)
    texts: dict[str, str] = {}
    seqs: dict[str, list[int]] = {}
    results: dict[str, worker_hub_pb2.TaskResult] = {}
    while len(results) < len(prompts):
        msg = await session.recv("chunk", "result")
        if isinstance(msg, worker_hub_pb2.TaskResult):
            results[msg.task_id] = msg
            continue
        assert msg.task_id not in results, "a chunk after its task's result"
        seqs.setdefault(msg.task_id, []).append(msg.seq)
        if msg.kind == common_pb2.CHUNK_KIND_TEXT:
            texts[msg.task_id] = texts.get(msg.task_id, "") + msg.text
    for task_id, prompt in prompts.items():
        assert not results[task_id].HasField("error")
        assert seqs[task_id] == list(range(len(seqs[task_id])))
        assert texts[task_id] == simulated_answer([{"role": "user", "content": prompt}], "sim-1")
