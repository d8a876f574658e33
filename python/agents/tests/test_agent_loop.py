"""The agent loop (LLM -> tool calls -> results -> LLM) on the OpenAI-compatible provider,
against a real local HTTP server that speaks the chat API with streamed tool-call deltas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from taskloom.agents.catalog import load_catalog
from taskloom.agents.providers import TextDelta
from taskloom.agents.providers.openai import OpenAIProvider
from taskloom.agents.runtime import AgentError, AgentRuntime
from taskloom.agents.tools import ToolError, ToolRegistry, builtin_factories

pytestmark = pytest.mark.asyncio

AGENT = """\
name: looper
provider: openai
model: m
cache: false
max_iterations: {max_iterations}
tool_timeout_s: {tool_timeout_s}
tools:
  - calculator
  - name: add
    function: tools_for_tests:add
    description: Add two integers.
    parameters:
      type: object
      properties: {{a: {{type: integer}}, b: {{type: integer}}}}
      required: [a, b]
      additionalProperties: false
  - name: rendezvous
    function: tools_for_tests:rendezvous
    description: Meet another call.
    parameters: {{type: object, properties: {{name: {{type: string}}}}, required: [name]}}
  - name: stuck
    function: tools_for_tests:sleep_forever
    description: Never returns.
    parameters: {{type: object}}
"""


def tool_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in body["messages"] if m["role"] == "tool"]


class Loop:
    """A runtime with the `looper` agent on the fake server; records the events."""

    def __init__(self, tmp_path: Path, base_url: str, telemetry: Any, **limits: Any) -> None:
        values = {"max_iterations": 8, "tool_timeout_s": 30} | limits
        (tmp_path / "looper.yaml").write_text(AGENT.format(**values))
        self.provider = OpenAIProvider(base_url, max_retries=0)
        self.runtime = AgentRuntime(
            load_catalog([tmp_path]),
            {"openai": self.provider},
            telemetry,
            tools=ToolRegistry(builtin_factories()),
        )
        self.events: list[Any] = []

    async def run(self, prompt: str = "go", **overrides: Any) -> dict[str, Any]:
        async def on_event(event: Any) -> None:
            self.events.append(event)

        try:
            result = await self.runtime.run("looper", {"prompt": prompt, **overrides}, on_event)
        finally:
            await self.provider.aclose()
        return result.output


@pytest.fixture
def loop(tmp_path, fake_openai, telemetry, test_tools_importable):  # type: ignore[no-untyped-def]
    import tools_for_tests

    tools_for_tests.reset()

    def make(**limits: Any) -> Loop:
        return Loop(tmp_path, fake_openai.base_url, telemetry, **limits)

    make.tools = tools_for_tests  # type: ignore[attr-defined]
    return make


async def test_loop_runs_tools_until_the_model_answers(loop, fake_openai) -> None:
    def respond(body: dict[str, Any]) -> dict[str, Any]:
        results = tool_messages(body)
        if not results:
            return {
                "reasoning": "I will compute.",
                "tool_calls": [
                    {"id": "c1", "name": "calculator", "arguments": {"expression": "6*7"}}
                ],
            }
        if len(results) == 1:
            return {"tool_calls": [{"id": "c2", "name": "add", "arguments": {"a": 40, "b": 2}}]}
        return {"text": "It is 42."}

    fake_openai.respond = respond
    agent = loop()
    output = await agent.run("what is 6*7?")

    assert output["text"] == "It is 42."
    assert output["iterations"] == 3
    assert output["tool_calls"] == [
        {"name": "calculator", "ok": True, "cached": False},
        {"name": "add", "ok": True, "cached": False},
    ]
    assert output["usage"]["prompt_tokens"] == 21  # 7 per turn, from the usage events
    assert len(fake_openai.requests) == 3
    # The model saw every tool result, answering its call by id.
    last = fake_openai.requests[-1]["messages"]
    assert [m["role"] for m in last] == ["user", "assistant", "tool", "assistant", "tool"]
    assert last[2] == {"role": "tool", "tool_call_id": "c1", "content": '{"result":42}'}
    assert orjson.loads(last[4]["content"]) == {"sum": 42}
    assert [t["function"]["name"] for t in fake_openai.requests[0]["tools"]] == [
        "calculator",
        "add",
        "rendezvous",
        "stuck",
    ]
    kinds = [type(e).__name__ for e in agent.events]
    assert kinds[0] == "ThoughtDelta"
    assert kinds.count("ToolCallComplete") == 2 and kinds.count("ToolResultEvent") == 2
    assert "".join(e.text for e in agent.events if isinstance(e, TextDelta)) == "It is 42."


async def test_max_iterations_ends_the_task_with_an_error_naming_the_limit(
    loop, fake_openai
) -> None:
    fake_openai.respond = lambda body: {
        "tool_calls": [{"name": "calculator", "arguments": {"expression": "1+1"}}]
    }
    with pytest.raises(AgentError, match=r"reached max_iterations \(3\)") as err:
        await loop(max_iterations=3).run()
    assert err.value.retryable is False
    assert len(fake_openai.requests) == 3


async def test_a_task_may_lower_max_iterations_but_not_raise_it(loop, fake_openai) -> None:
    fake_openai.respond = lambda body: {
        "tool_calls": [{"name": "calculator", "arguments": {"expression": "1+1"}}]
    }
    with pytest.raises(AgentError, match=r"max_iterations \(2\)"):
        await loop(max_iterations=5).run(max_iterations=2)
    assert len(fake_openai.requests) == 2
    with pytest.raises(AgentError, match=r"input.max_iterations = 9 is outside .*\[1, 5\]"):
        await loop(max_iterations=5).run(max_iterations=9)


async def test_parallel_tool_calls_run_at_the_same_time(loop, fake_openai) -> None:
    def respond(body: dict[str, Any]) -> dict[str, Any]:
        if tool_messages(body):
            return {"text": "met"}
        return {
            "tool_calls": [
                {"id": "l", "name": "rendezvous", "arguments": {"name": "left"}},
                {"id": "r", "name": "rendezvous", "arguments": {"name": "right"}},
            ]
        }

    fake_openai.respond = respond
    agent = loop()
    output = await agent.run()
    assert output["text"] == "met"
    assert loop.tools.most_inside == 2
    results = [orjson.loads(m["content"]) for m in tool_messages(fake_openai.requests[-1])]
    assert results == [{"name": "left", "together": True}, {"name": "right", "together": True}]


async def test_a_tool_past_its_timeout_is_a_tool_error_and_the_loop_goes_on(
    loop, fake_openai
) -> None:
    def respond(body: dict[str, Any]) -> dict[str, Any]:
        if tool_messages(body):
            return {"text": "gave up waiting"}
        return {"tool_calls": [{"id": "s", "name": "stuck", "arguments": {}}]}

    fake_openai.respond = respond
    output = await loop(tool_timeout_s=0.2).run()
    assert output["text"] == "gave up waiting"
    [result] = tool_messages(fake_openai.requests[-1])
    assert orjson.loads(result["content"]) == {"error": "tool 'stuck' timed out after 0.2 s"}
    assert output["tool_calls"] == [{"name": "stuck", "ok": False, "cached": False}]


async def test_bad_arguments_go_back_to_the_model_which_corrects_them(loop, fake_openai) -> None:
    def respond(body: dict[str, Any]) -> dict[str, Any]:
        results = tool_messages(body)
        if not results:
            bad = {"a": "two", "b": 2, "c": 1}
            return {"tool_calls": [{"id": "x", "name": "add", "arguments": bad}]}
        if "invalid arguments" in results[-1]["content"]:
            return {"tool_calls": [{"id": "y", "name": "add", "arguments": {"a": 2, "b": 2}}]}
        return {"text": "4"}

    fake_openai.respond = respond
    agent = loop()
    output = await agent.run()
    assert output["text"] == "4"
    first = orjson.loads(tool_messages(fake_openai.requests[1])[0]["content"])
    assert "$.a: 'two' is not of type 'integer'" in first["error"]
    assert "Additional properties are not allowed ('c' was unexpected)" in first["error"]
    assert agent_calls(loop) == [{"a": 2, "b": 2}]  # the tool ran only with valid arguments


async def test_unknown_tool_and_malformed_json_are_tool_errors(loop, fake_openai) -> None:
    def respond(body: dict[str, Any]) -> dict[str, Any]:
        if tool_messages(body):
            return {"text": "ok"}
        return {
            "tool_calls": [
                {"id": "u", "name": "teleport", "arguments": {}},
                {"id": "j", "name": "add", "arguments": '{"a": 1,'},
            ]
        }

    fake_openai.respond = respond
    await loop().run()
    unknown, malformed = (
        orjson.loads(m["content"]) for m in tool_messages(fake_openai.requests[-1])
    )
    assert unknown["error"].startswith(
        "unknown tool 'teleport'; this agent's tools: add, calculator"
    )
    assert malformed["error"].startswith("arguments are not valid JSON")


def agent_calls(loop) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    return list(loop.tools.calls)


async def test_a_tool_named_by_an_entry_point_is_loaded_on_first_use(
    loop, fake_openai, monkeypatch
) -> None:
    from importlib.metadata import EntryPoint, EntryPoints

    from taskloom.agents.tools import functions

    plugin = EntryPoint("adder", "tools_for_tests:add", functions.ENTRY_POINT_GROUP)

    def entry_points(group: str, name: str) -> EntryPoints:
        return EntryPoints([plugin] if (group, name) == (plugin.group, plugin.name) else [])

    monkeypatch.setattr(functions, "entry_points", entry_points)
    decl = {"name": "plugged", "entry_point": "adder"}
    from taskloom.agents.catalog.spec import ToolDecl

    tool = functions.function_tool(ToolDecl.model_validate(decl))
    assert tool.description == "Add two integers (a sync tool: runs in a thread)."
    assert await tool.call({"a": 1, "b": 2}, None) == {"sum": 3}  # type: ignore[arg-type]
    missing = functions.function_tool(
        ToolDecl.model_validate(
            {"name": "x", "entry_point": "nope", "description": "d", "parameters": {}}
        )
    )
    with pytest.raises(ToolError, match=r"no entry point 'nope' in group 'taskloom\.tools'"):
        await missing.call({}, None)  # type: ignore[arg-type]
