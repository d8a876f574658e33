"""Collects a task's event stream (SSE or WebSocket, as `TaskloomClient.stream_events`
yields it) into one result: the answer's text, the thoughts, the tool calls and results,
the tokens, the errors and the final task. Only the latest attempt's chunks count: a
retried task streams again from the start.

    with TaskloomClient(url) as tl:
        run = collect_stream(tl.stream_events(tl.submit_task("toolsmith", "6 * 7?")["id"]))
        print(run.text, run.tool_calls, run.usage)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from taskloom.sdk.client import Event


@dataclass
class StreamedRun:
    text: str = ""
    thoughts: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    tool_results: list[dict[str, Any]] = field(default_factory=list)
    # Summed over the attempt's LLM turns.
    usage: dict[str, int] = field(
        default_factory=lambda: {"prompt_tokens": 0, "completion_tokens": 0}
    )
    errors: list[str] = field(default_factory=list)
    attempt: int = 0
    status: str | None = None
    # The final task (the `done` event), when the stream reached it.
    task: dict[str, Any] | None = None


def collect_stream(events: Iterable[Event]) -> StreamedRun:
    run = StreamedRun()
    parts: list[str] = []
    thoughts: list[str] = []
    for event in events:
        data = event.data if isinstance(event.data, dict) else {}
        if event.event == "status":
            run.status = data.get("status")
        elif event.event == "done":
            run.task = data
            run.status = data.get("status", run.status)
        elif event.event == "chunk":
            attempt = int(data.get("attempt", 0))
            if attempt != run.attempt:  # a new attempt starts over
                fresh = StreamedRun(attempt=attempt, status=run.status)
                run, parts, thoughts = fresh, [], []
            _add_chunk(run, data, parts, thoughts)
    run.text = "".join(parts)
    run.thoughts = "".join(thoughts)
    return run


def _add_chunk(
    run: StreamedRun, data: dict[str, Any], parts: list[str], thoughts: list[str]
) -> None:
    kind = data.get("kind", "text")
    payload = data.get("data") or {}
    if kind == "text":
        parts.append(data.get("text", ""))
    elif kind == "thought":
        thoughts.append(data.get("text", ""))
    elif kind == "tool_call":
        run.tool_calls.append(payload)
    elif kind == "tool_result":
        run.tool_results.append(payload)
    elif kind == "usage":
        for key in run.usage:
            run.usage[key] += int(payload.get(key, 0))
    elif kind == "error":
        run.errors.append(data.get("text", ""))
