"""collect_stream: a task's events folded into one result."""

from __future__ import annotations

from taskloom.sdk.client import Event
from taskloom.sdk.streams import collect_stream


def chunk(seq: int, attempt: int = 1, **fields: object) -> Event:
    return Event("chunk", {"seq": seq, "attempt": attempt, **fields})


def test_collects_text_thoughts_tools_usage_and_the_final_task() -> None:
    events = [
        Event("status", {"status": "running"}),
        chunk(0, kind="thought", text="add "),
        chunk(1, kind="thought", text="them"),
        chunk(2, kind="tool_call", data={"id": "c", "name": "calculator", "arguments": "{}"}),
        chunk(3, kind="usage", data={"prompt_tokens": 5, "completion_tokens": 1}),
        chunk(4, kind="tool_result", data={"id": "c", "ok": True, "content": "2"}),
        chunk(5, text="It is "),
        chunk(6, text="2."),
        chunk(7, kind="usage", data={"prompt_tokens": 9, "completion_tokens": 3}),
        Event("done", {"id": "t", "status": "succeeded", "result": {"text": "It is 2."}}),
    ]
    run = collect_stream(events)
    assert run.text == "It is 2." and run.thoughts == "add them"
    assert [c["name"] for c in run.tool_calls] == ["calculator"]
    assert run.tool_results[0]["content"] == "2"
    assert run.usage == {"prompt_tokens": 14, "completion_tokens": 4}
    assert run.status == "succeeded" and run.task is not None and run.errors == []


def test_a_new_attempt_starts_over_and_errors_are_kept() -> None:
    events = [
        chunk(0, attempt=1, text="lost "),
        chunk(1, attempt=1, kind="error", text="overloaded"),
        chunk(0, attempt=2, text="kept"),
        Event("done", {"status": "succeeded"}),
    ]
    run = collect_stream(events)
    assert run.text == "kept" and run.attempt == 2 and run.errors == []
    assert collect_stream(events[:2]).errors == ["overloaded"]
