"""The journal on the worker: a run records each completed LLM turn and each result of a
replayable tool; a run given those records replays them instead of calling the LLM and the
tools again, and carries on live (recording, with the next seq numbers) where they end."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from taskloom.agents.catalog import load_catalog
from taskloom.agents.journal import LLM_TURN, TOOL_RESULT, Journal
from taskloom.agents.providers.simulated import SimulatedProvider
from taskloom.agents.runtime import AgentRuntime
from taskloom.agents.tools import ToolRegistry, builtin_factories
from taskloom.v1 import worker_hub_pb2

pytestmark = pytest.mark.asyncio

AGENT = """\
name: journaled
model: sim-1
cache: false
tools:
  - name: add
    function: tools_for_tests:add
    description: Add two integers.
    parameters: {type: object, properties: {a: {type: integer}, b: {type: integer}}}
  - name: add_live
    function: tools_for_tests:add
    description: Add two integers, never replayed.
    replayable: false
    parameters: {type: object, properties: {a: {type: integer}, b: {type: integer}}}
"""

SCRIPT = [
    {"tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 2}}]},
    {
        "tool_calls": [
            {"name": "add", "arguments": {"a": 3, "b": 4}},
            {"name": "add_live", "arguments": {"a": 5, "b": 6}},
        ]
    },
    {"text": "The sums are 3 and 7."},
]


class CountingProvider(SimulatedProvider):
    """The simulated LLM, counting the turns it is asked for."""

    def __init__(self) -> None:
        super().__init__(latency_s=0, tokens_per_second=0)
        self.turns = 0

    async def stream(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        self.turns += 1
        async for event in super().stream(*args, **kwargs):
            yield event


class Run:
    def __init__(self, tmp_path: Path, telemetry: Any) -> None:
        (tmp_path / "journaled.yaml").write_text(AGENT)
        self.provider = CountingProvider()
        self.runtime = AgentRuntime(
            load_catalog([tmp_path]),
            {"simulated": self.provider},
            telemetry,
            tools=ToolRegistry(builtin_factories()),
        )
        self.sent: list[worker_hub_pb2.JournalRecord] = []

    def send(self, seq: int, kind: int, payload: bytes) -> None:
        self.sent.append(
            worker_hub_pb2.JournalRecord(seq=seq, kind=kind, payload=payload)  # type: ignore[arg-type]
        )

    async def __call__(self, records: list[worker_hub_pb2.JournalRecord]) -> dict[str, Any]:
        async def on_event(event: Any) -> None:
            return None

        task_input = {"prompt": "add", "simulate": {"script": SCRIPT}}
        journal = Journal(records, self.send)
        result = await self.runtime.run("journaled", task_input, on_event, journal=journal)
        return result.output


@pytest.fixture
def added(test_tools_importable: str) -> list[dict[str, int]]:
    import tools_for_tests

    tools_for_tests.reset()
    return tools_for_tests.calls


async def test_a_run_records_turns_and_replayable_results(tmp_path, telemetry, added) -> None:
    run = Run(tmp_path, telemetry)
    output = await run([])
    assert output["text"] == "[simulated] The sums are 3 and 7."
    assert run.provider.turns == 3 and len(added) == 3
    kinds = [r.kind for r in run.sent]
    # add_live is not replayable: its result is not recorded.
    assert kinds == [LLM_TURN, TOOL_RESULT, LLM_TURN, TOOL_RESULT, LLM_TURN]
    assert [r.seq for r in run.sent] == [0, 1, 2, 3, 4]
    first = orjson.loads(run.sent[0].payload)
    assert first["tool_calls"][0]["name"] == "add" and first["text"] == ""
    assert orjson.loads(run.sent[1].payload)["content"] == '{"sum":3}'


async def test_a_whole_journal_replays_without_the_llm_or_replayable_tools(
    tmp_path, telemetry, added
) -> None:
    first = Run(tmp_path, telemetry)
    expected = await first([])
    added.clear()
    again = Run(tmp_path, telemetry)
    output = await again(first.sent)
    assert again.provider.turns == 0
    assert added == [{"a": 5, "b": 6}]  # add_live is not replayable: it ran again
    assert output["text"] == expected["text"] and output["usage"] == expected["usage"]
    assert output["tool_calls"] == expected["tool_calls"]
    assert again.sent == []  # nothing new to record


async def test_a_journal_cut_short_replays_its_part_and_runs_the_rest(
    tmp_path, telemetry, added
) -> None:
    first = Run(tmp_path, telemetry)
    await first([])
    added.clear()
    again = Run(tmp_path, telemetry)
    output = await again(first.sent[:2])  # the first turn and its result
    assert again.provider.turns == 2
    assert sorted(map(str, added)) == ["{'a': 3, 'b': 4}", "{'a': 5, 'b': 6}"]
    assert output["text"] == "[simulated] The sums are 3 and 7."
    assert [(r.seq, r.kind) for r in again.sent] == [(2, LLM_TURN), (3, TOOL_RESULT), (4, LLM_TURN)]
