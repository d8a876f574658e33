"""Coalesced text streaming: one chunk per flush interval or buffer size instead of one per
token; order kept, nothing lost, a flush on completion and on cancel."""

from __future__ import annotations

import asyncio

import pytest

from taskloom.agents.providers import TextDelta
from taskloom.agents.streaming import StreamOptions, TextCoalescer
from taskloom.v1 import common_pb2, worker_hub_pb2

pytestmark = pytest.mark.asyncio


async def test_pieces_are_joined_in_order_up_to_the_buffer_size() -> None:
    sent: list[str] = []
    coalescer = TextCoalescer(sent.append, StreamOptions(buffer_size=10, flush_interval_ms=10_000))
    for piece in ["ab", "cd", "ef", "gh", "ij", "kl", "m"]:
        coalescer.add(piece)
    assert sent == ["abcdefghij"]  # the buffer filled: one chunk
    coalescer.flush()
    assert sent == ["abcdefghij", "klm"]


async def test_the_flush_interval_sends_what_is_buffered() -> None:
    sent: list[str] = []
    flushed = asyncio.Event()

    def send(text: str) -> None:
        sent.append(text)
        flushed.set()

    coalescer = TextCoalescer(send, StreamOptions(buffer_size=1 << 20, flush_interval_ms=1))
    coalescer.add("a")
    coalescer.add("b")
    await asyncio.wait_for(flushed.wait(), 10)
    assert sent == ["ab"]


async def test_zero_sends_every_piece() -> None:
    sent: list[str] = []
    coalescer = TextCoalescer(sent.append, StreamOptions(buffer_size=0))
    for piece in ["a", "b", ""]:
        coalescer.add(piece)
    assert sent == ["a", "b"]


async def test_stream_options_from_the_task_input_name_a_bad_field() -> None:
    default = StreamOptions()
    assert StreamOptions.from_input("text", default) is default
    options = StreamOptions.from_input({"stream": {"buffer_size": 0}}, default)
    assert options.buffer_size == 0 and options.flush_interval_ms == default.flush_interval_ms
    for bad, field in [
        ({"buffer_size": -1}, "buffer_size"),
        ({"flush_interval_ms": "soon"}, "flush_interval_ms"),
        ({"text_only": 1}, "text_only"),
        ({"colour": "red"}, "colour"),
    ]:
        with pytest.raises(ValueError, match=f"input.stream.{field}"):
            StreamOptions.from_input({"stream": bad}, default)


class SlowWords:
    """Streams WORDS words, one per `step`, then waits for `gate` (if given) before ending."""

    name = "simulated"

    def __init__(self, words: int, gate: asyncio.Event | None = None) -> None:
        self.words = words
        self.gate = gate
        self.emitted = asyncio.Event()  # every word has been handed to the worker

    async def stream(self, messages, model, params, tools=()):  # type: ignore[no-untyped-def]
        for i in range(self.words):
            yield TextDelta(f"w{i} ")
            await asyncio.sleep(0)
        if self.gate is not None:
            self.emitted.set()
            await self.gate.wait()

    async def aclose(self) -> None:
        return None


def assignment(task_id: str, stream: dict | None = None) -> worker_hub_pb2.Assignment:
    task_input: dict = {"prompt": "go"}
    if stream is not None:
        task_input["stream"] = stream
    task = common_pb2.Task(id=task_id, agent="assistant")
    task.input.struct_value.update(task_input)
    return worker_hub_pb2.Assignment(task=task, lease_id=f"lease-{task_id}", attempt=1)


async def chunks_until_result(session, kind=common_pb2.CHUNK_KIND_TEXT):  # type: ignore[no-untyped-def]
    """The chunks of one kind (None: all) up to the result, and the result."""
    chunks = []
    while True:
        msg = await session.recv("chunk", "result")
        if isinstance(msg, worker_hub_pb2.TaskResult):
            return chunks, msg
        if kind is None or msg.kind == kind:
            chunks.append(msg)


async def test_a_task_streams_fewer_chunks_than_tokens_and_loses_none(
    hub_server, worker_factory
) -> None:
    worker_factory(hub_server.addr, provider=SlowWords(200))
    session = await hub_server.hub.next_session()
    await session.recv("credit")
    session.send(assignment=assignment("s1", {"buffer_size": 64, "flush_interval_ms": 10_000}))
    chunks, result = await chunks_until_result(session)
    text = "".join(f"w{i} " for i in range(200))
    assert "".join(c.text for c in chunks) == text
    assert [c.seq for c in chunks] == list(range(len(chunks)))  # the usage chunk comes last
    assert len(chunks) <= len(text) // 64 + 1
    assert all(len(c.text) >= 64 for c in chunks[:-1])
    assert not result.HasField("error")


async def test_buffered_text_is_flushed_before_a_cancelled_result(
    hub_server, worker_factory
) -> None:
    provider = SlowWords(3, asyncio.Event())
    worker_factory(hub_server.addr, provider=provider)
    session = await hub_server.hub.next_session()
    await session.recv("credit")
    # Nothing would flush these three words but the end of the task.
    session.send(assignment=assignment("s2", {"buffer_size": 1 << 20, "flush_interval_ms": 10_000}))
    await asyncio.wait_for(provider.emitted.wait(), 10)
    session.send(cancel=worker_hub_pb2.CancelAssignment(task_id="s2", lease_id="lease-s2"))
    chunks, result = await chunks_until_result(session)
    assert "".join(c.text for c in chunks) == "w0 w1 w2 "
    assert result.error.reason == common_pb2.ERROR_REASON_CANCELLED


async def test_typed_chunks_come_in_order_and_text_only_leaves_the_text(
    hub_server, worker_factory
) -> None:
    worker_factory(hub_server.addr)
    session = await hub_server.hub.next_session()
    await session.recv("credit")
    script = [
        {"thought": "add it up", "tool_calls": [{"name": "nope", "arguments": {"x": "a"}}]},
        {"text": "done"},
    ]

    def typed(task_id: str, **stream: object) -> worker_hub_pb2.Assignment:
        task = common_pb2.Task(id=task_id, agent="toolsmith")
        task.input.struct_value.update(
            {"prompt": "go", "simulate": {"script": script}, "stream": stream}
        )
        return worker_hub_pb2.Assignment(task=task, lease_id=f"lease-{task_id}", attempt=1)

    session.send(assignment=typed("k1"))
    chunks, result = await chunks_until_result(session, kind=None)
    assert not result.HasField("error")
    kinds = [common_pb2.ChunkKind.Name(c.kind).removeprefix("CHUNK_KIND_") for c in chunks]
    assert kinds == ["THOUGHT", "TOOL_CALL", "USAGE", "TOOL_RESULT", "TEXT", "USAGE"]
    assert [c.seq for c in chunks] == list(range(len(chunks)))
    thought, call, _, tool_result, text, usage = chunks
    assert thought.text == "add it up"
    assert dict(call.data) == {"id": "call_0_0", "name": "nope", "arguments": '{"x":"a"}'}
    assert tool_result.data["id"] == "call_0_0" and tool_result.data["ok"] is False
    assert "unknown tool 'nope'" in tool_result.data["content"]
    assert text.text == "[simulated] done"
    assert usage.data["completion_tokens"] == 2

    session.send(assignment=typed("k2", text_only=True))
    chunks, _ = await chunks_until_result(session, kind=None)
    assert [c.kind for c in chunks] == [common_pb2.CHUNK_KIND_TEXT]


async def test_a_failed_agent_streams_an_error_chunk_before_its_result(
    hub_server, worker_factory
) -> None:
    worker_factory(hub_server.addr)
    session = await hub_server.hub.next_session()
    await session.recv("credit")
    task = common_pb2.Task(id="e1", agent="assistant")
    task.input.struct_value.update({"prompt": "x", "simulate": {"script": [{"error": "boom"}]}})
    session.send(assignment=worker_hub_pb2.Assignment(task=task, lease_id="lease-e1", attempt=1))
    [error], result = await chunks_until_result(session, kind=common_pb2.CHUNK_KIND_ERROR)
    assert error.text == "simulated failure: boom"
    assert result.error.message == "simulated failure: boom"
