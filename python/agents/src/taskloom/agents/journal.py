"""A task's journal on the worker (taskloom.v1.JournalRecord): each completed LLM turn and
the result of each call of a replayable tool is sent to the orchestrator as it completes,
without waiting for it to be stored; an attempt that was assigned the journal of earlier
attempts replays it, turn by turn, instead of calling the LLM and the tools again. A step
whose record did not reach the store before a crash simply runs again.

Payloads are JSON (the orchestrator keeps them as they are):
  LLM_TURN     {"text", "tool_calls": [{"id", "name", "arguments"}], "usage": [prompt,
               completion], "cached"}
  TOOL_RESULT  {"id", "name", "ok", "content", "cached"}: one call of the turn before it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog

from taskloom.agents.providers.base import ToolCall, Usage
from taskloom.v1 import limits_pb2, worker_hub_pb2

log = structlog.get_logger(__name__)

LLM_TURN = worker_hub_pb2.JOURNAL_KIND_LLM_TURN
TOOL_RESULT = worker_hub_pb2.JOURNAL_KIND_TOOL_RESULT

# Sends one record: (seq, kind, payload).
SendRecord = Callable[[int, int, bytes], None]


def _max_assignment_bytes() -> int:
    """An assignment carries a task (bounded like any hub message) and its journal
    (bounded on Assignment.journal): the worker's channel must take both."""
    hub = worker_hub_pb2.DESCRIPTOR.services_by_name["WorkerHubService"]
    request = hub.GetOptions().Extensions[limits_pb2.service_limits].max_request_bytes
    field_ = worker_hub_pb2.Assignment.DESCRIPTOR.fields_by_name["journal"]
    journal = field_.GetOptions().Extensions[limits_pb2.limits].max_bytes
    return int(2 * request + 2 * journal)  # room for the records' own framing


CHANNEL_OPTIONS = [("grpc.max_receive_message_length", _max_assignment_bytes())]


def attempt_journal(
    assignment: worker_hub_pb2.Assignment,
    outbox: asyncio.Queue[worker_hub_pb2.SessionRequest | None],
) -> Journal:
    """The journal of an assigned attempt: it replays what the assignment carries and
    queues this attempt's records on the session's outbox."""
    task_id, lease_id = assignment.task.id, assignment.lease_id

    def send(seq: int, kind: int, payload: bytes) -> None:
        record = worker_hub_pb2.JournalRecord(
            task_id=task_id,
            lease_id=lease_id,
            seq=seq,
            kind=kind,  # type: ignore[arg-type]
            payload=payload,
        )
        outbox.put_nowait(worker_hub_pb2.SessionRequest(journal=record))

    return Journal(assignment.journal, send)


@dataclass(frozen=True)
class JournalTurn:
    """A completed LLM turn as the loop uses it."""

    text: str
    calls: list[ToolCall] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    cached: bool = False
    # A cached turn's cost when it was first answered (the savings ledger's figure).
    original_usage: Usage = field(default_factory=Usage)


@dataclass(frozen=True)
class JournalResult:
    """A completed tool call as the model saw it."""

    call_id: str
    name: str
    ok: bool
    content: str
    cached: bool = False


@dataclass
class _Step:
    turn: JournalTurn
    results: dict[str, JournalResult] = field(default_factory=dict)


class Journal:
    """The journal of one attempt: what earlier attempts recorded, replayed in order,
    and the records of this attempt, sent with the next seq numbers."""

    def __init__(
        self, records: Iterable[worker_hub_pb2.JournalRecord] = (), send: SendRecord | None = None
    ) -> None:
        self._steps: list[_Step] = []
        records = list(records)
        # This attempt's first record follows every record the orchestrator holds.
        self.next_seq = len(records)
        for record in records:
            try:
                self._load(record)
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                log.warning("journal record unreadable; the rest runs live", seq=record.seq)
                break
        self._cursor = 0
        self._send = send

    @property
    def replaying(self) -> bool:
        return self._cursor < len(self._steps)

    def _load(self, record: worker_hub_pb2.JournalRecord) -> None:
        value = orjson.loads(record.payload)
        if record.kind == LLM_TURN:
            calls = [ToolCall(c["id"], c["name"], c["arguments"]) for c in value["tool_calls"]]
            prompt, completion = value["usage"]
            turn = JournalTurn(value["text"], calls, Usage(prompt, completion), value["cached"])
            self._steps.append(_Step(turn))
        elif record.kind == TOOL_RESULT and self._steps:
            result = JournalResult(
                value["id"], value["name"], value["ok"], value["content"], value["cached"]
            )
            self._steps[-1].results[result.call_id] = result

    def replay_turn(self) -> JournalTurn | None:
        """The next recorded turn, or None once the journal is replayed (then the loop
        runs live and records what it does)."""
        if not self.replaying:
            return None
        return self._steps[self._cursor].turn

    def replayed_results(self, replayable: Callable[[str], bool]) -> dict[str, JournalResult]:
        """The recorded results of the turn replay_turn gave, by call id, for tools that
        are replayable; moves on to the next turn."""
        if not self.replaying:
            return {}
        step = self._steps[self._cursor]
        self._cursor += 1
        return {i: r for i, r in step.results.items() if replayable(r.name)}

    def record_turn(self, turn: JournalTurn) -> None:
        calls = [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in turn.calls]
        usage = [turn.usage.prompt_tokens, turn.usage.completion_tokens]
        value = {"text": turn.text, "tool_calls": calls, "usage": usage, "cached": turn.cached}
        self._record(LLM_TURN, value)

    def record_results(self, results: Sequence[JournalResult]) -> None:
        for r in results:
            value = {
                "id": r.call_id,
                "name": r.name,
                "ok": r.ok,
                "content": r.content,
                "cached": r.cached,
            }
            self._record(TOOL_RESULT, value)

    def _record(self, kind: int, value: dict[str, Any]) -> None:
        if self._send is None:
            return
        self._send(self.next_seq, kind, orjson.dumps(value))
        self.next_seq += 1
