"""What the worker streams for a task: typed chunks (taskloom.v1.ChunkKind), with the
answer's text coalesced: instead of one gRPC message per token, one chunk per flush
interval or per `buffer_size` bytes, whichever comes first, flushed before anything else
is sent for the task (a typed chunk, its result, a cancel). Order is kept and nothing is
dropped: there is one buffer per task and one way out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from taskloom.agents.providers.base import (
    TextDelta,
    ThoughtDelta,
    ToolCallComplete,
    UsageUpdate,
)
from taskloom.agents.runtime import AgentEvent, ToolResultEvent
from taskloom.v1 import common_pb2, worker_hub_pb2

# Provisional defaults; the fast-path work sets them by benchmark.
DEFAULT_BUFFER_SIZE = 256
DEFAULT_FLUSH_INTERVAL_MS = 25.0


@dataclass(frozen=True)
class StreamOptions:
    """How a task's text is streamed. `buffer_size` 0 or `flush_interval_ms` 0 sends every
    piece as it comes."""

    buffer_size: int = DEFAULT_BUFFER_SIZE
    flush_interval_ms: float = DEFAULT_FLUSH_INTERVAL_MS
    text_only: bool = False

    @classmethod
    def from_input(cls, task_input: Any, default: StreamOptions) -> StreamOptions:
        """The task input's `stream` object over the worker's defaults; ValueError names a
        bad field."""
        raw = task_input.get("stream") if isinstance(task_input, Mapping) else None
        if raw is None:
            return default
        if not isinstance(raw, Mapping):
            raise ValueError("input.stream must be an object")
        unknown = set(raw) - {"buffer_size", "flush_interval_ms", "text_only"}
        if unknown:
            raise ValueError(f"input.stream.{sorted(unknown)[0]} is not a stream option")
        size = raw.get("buffer_size", default.buffer_size)
        interval = raw.get("flush_interval_ms", default.flush_interval_ms)
        text_only = raw.get("text_only", default.text_only)
        if isinstance(size, float) and size.is_integer():
            size = int(size)  # JSON numbers arrive as floats through protobuf's Struct
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= 1 << 20:
            raise ValueError("input.stream.buffer_size must be an integer from 0 to 1048576")
        if isinstance(interval, bool) or not isinstance(interval, int | float):
            raise ValueError("input.stream.flush_interval_ms must be a number")
        if not 0 <= interval <= 10_000:
            raise ValueError("input.stream.flush_interval_ms must be from 0 to 10000")
        if not isinstance(text_only, bool):
            raise ValueError("input.stream.text_only must be true or false")
        return cls(size, float(interval), text_only)


class TextCoalescer:
    """Buffers text pieces and hands them to `send` in order, joined."""

    def __init__(self, send: Callable[[str], None], options: StreamOptions) -> None:
        self._send = send
        self._size = options.buffer_size
        self._interval_s = options.flush_interval_ms / 1000
        self._pieces: list[str] = []
        self._buffered = 0
        self._timer: asyncio.TimerHandle | None = None
        self.passthrough = self._size <= 0 or self._interval_s <= 0

    def add(self, text: str) -> None:
        if not text:
            return
        if self.passthrough:
            self._send(text)
            return
        self._pieces.append(text)
        self._buffered += len(text)
        if self._buffered >= self._size:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._interval_s, self.flush)

    def flush(self) -> None:
        """Send what is buffered now (before any other message of the task)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._pieces:
            text = "".join(self._pieces)
            self._pieces.clear()
            self._buffered = 0
            self._send(text)


class ChunkStream:
    """The chunks of one task attempt, in order: answer text coalesced (TextCoalescer);
    thoughts, tool calls, tool results, each turn's usage and a failure as typed chunks
    (taskloom.v1.ChunkKind), each sent after flushing the text before it. With
    `text_only`, only the text goes out."""

    def __init__(
        self,
        send: Callable[[worker_hub_pb2.TaskChunk], None],
        task_id: str,
        lease_id: str,
        options: StreamOptions,
    ) -> None:
        self._send = send
        self._task_id = task_id
        self._lease_id = lease_id
        self.seq = 0
        self.configure(options)

    def configure(self, options: StreamOptions) -> None:
        """Apply the task's own options (before anything was streamed)."""
        self._text_only = options.text_only
        self._text = TextCoalescer(self._send_text, options)

    def _chunk(
        self, kind: common_pb2.ChunkKind.ValueType, text: str = ""
    ) -> worker_hub_pb2.TaskChunk:
        chunk = worker_hub_pb2.TaskChunk(
            task_id=self._task_id, lease_id=self._lease_id, seq=self.seq, text=text, kind=kind
        )
        self.seq += 1
        return chunk

    def _send_text(self, text: str) -> None:
        self._send(self._chunk(common_pb2.CHUNK_KIND_TEXT, text))

    def _typed(
        self,
        kind: common_pb2.ChunkKind.ValueType,
        text: str = "",
        data: dict[str, Any] | None = None,
    ) -> None:
        if self._text_only:
            return
        self._text.flush()
        chunk = self._chunk(kind, text)
        if data is not None:
            chunk.data.update(data)
        self._send(chunk)

    def event(self, event: AgentEvent) -> None:
        if isinstance(event, TextDelta):
            self._text.add(event.text)
        elif isinstance(event, ThoughtDelta):
            self._typed(common_pb2.CHUNK_KIND_THOUGHT, event.text)
        elif isinstance(event, ToolCallComplete):
            call = event.call
            made = {"id": call.id, "name": call.name, "arguments": call.arguments}
            self._typed(common_pb2.CHUNK_KIND_TOOL_CALL, data=made)
        elif isinstance(event, ToolResultEvent):
            result: dict[str, Any] = {
                "id": event.call_id,
                "name": event.name,
                "ok": event.ok,
                "content": event.content,
                "cached": event.cached,
            }
            self._typed(common_pb2.CHUNK_KIND_TOOL_RESULT, data=result)
        elif isinstance(event, UsageUpdate):
            usage = {
                "prompt_tokens": event.prompt_tokens,
                "completion_tokens": event.completion_tokens,
            }
            self._typed(common_pb2.CHUNK_KIND_USAGE, data=usage)

    def error(self, message: str) -> None:
        self._typed(common_pb2.CHUNK_KIND_ERROR, message)

    def flush(self) -> None:
        self._text.flush()
