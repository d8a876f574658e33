"""The simulated LLM: deterministic answers at a configurable latency and token rate, for
demos, tests and benchmarks. Every answer says it is simulated.

It can be scripted, from the agent definition or the task input (`simulate:`), so every
path of the agent loop runs without a real model:

    simulate:
      latency_ms: 1000          # time to first token of each turn (default: the worker's)
      tokens_per_second: 0      # 0 = no pacing: the answer comes in one piece
      script:                   # one entry per LLM turn of the task; then the default answer
        - thought: "Add them up."
          tool_calls: [{name: calculator, arguments: {expression: "2 + 2"}}]
        - text: "It is 4."
          completion_tokens: 3  # reported usage (default: counted from the text)
        - error: "overloaded"   # the turn fails with this message
          retryable: true

The turn index is the number of assistant messages after the last user message, so a
retried task follows the same script from the start.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import orjson

from taskloom.agents.providers.base import (
    GenerationParams,
    Message,
    ProviderError,
    ProviderEvent,
    TextDelta,
    ThoughtDelta,
    ToolCall,
    ToolCallComplete,
    ToolDefinition,
    UsageUpdate,
)

_TOKEN = re.compile(r"\S+\s*")
MARKER = "[simulated] "


def count_tokens(text: str) -> int:
    """A rough token count (whitespace-separated words), good enough for simulation."""
    return len(_TOKEN.findall(text))


def simulated_answer(messages: Sequence[Message], model: str) -> str:
    """The default answer: names the model, echoes the question and any tool results."""
    last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=-1)
    prompt = messages[last_user]["content"] if last_user >= 0 else ""
    prompt = " ".join(prompt.split())
    if len(prompt) > 200:
        prompt = prompt[:197] + "..."
    answer = (
        f"{MARKER}This is a simulated response from model {model}, not a real LLM. "
        f'You asked: "{prompt}".'
    )
    results = [m for m in messages[last_user + 1 :] if m["role"] == "tool"]
    if results:
        shown = "; ".join(f"{m.get('name', 'tool')} -> {m['content'][:200]}" for m in results)
        return f"{answer} Tool results: {shown}."
    return (
        f"{answer} A real provider would answer here; configure an agent with provider "
        "openai to use one."
    )


def turn_index(messages: Sequence[Message]) -> int:
    """How many LLM turns this task has had since its last user message."""
    count = 0
    for message in reversed(messages):
        if message["role"] == "user":
            break
        if message["role"] == "assistant":
            count += 1
    return count


class SimulatedProvider:
    name = "simulated"

    def __init__(self, latency_s: float = 0.2, tokens_per_second: float = 50.0) -> None:
        self._latency_s = latency_s
        self._tokens_per_second = tokens_per_second

    async def stream(
        self,
        messages: Sequence[Message],
        model: str,
        params: GenerationParams,
        tools: Sequence[ToolDefinition] = (),
    ) -> AsyncIterator[ProviderEvent]:
        options = params.options.get("simulate") or {}
        script = options.get("script") or ()
        index = turn_index(messages)
        turn: Mapping[str, Any] = script[index] if index < len(script) else {}
        latency_s = _number(turn, options, "latency_ms", self._latency_s * 1000) / 1000
        rate = _number(turn, options, "tokens_per_second", self._tokens_per_second)
        prompt_tokens = int(
            turn.get("prompt_tokens", sum(count_tokens(m["content"]) for m in messages))
        )

        loop = asyncio.get_running_loop()
        start = loop.time() + latency_s
        if latency_s > 0:
            await asyncio.sleep(latency_s)
        if "error" in turn:
            raise ProviderError(
                f"simulated failure: {turn['error']}", retryable=bool(turn.get("retryable"))
            )
        if thought := turn.get("thought"):
            yield ThoughtDelta(str(thought))

        calls = [_tool_call(index, i, raw) for i, raw in enumerate(turn.get("tool_calls") or ())]
        if "text" in turn:
            text = str(turn["text"])
            text = text if text.startswith(MARKER) or not text else MARKER + text
        else:
            text = "" if calls else simulated_answer(messages, model)
        tokens = _TOKEN.findall(text)[: params.max_tokens]
        completion_tokens = int(turn.get("completion_tokens", len(tokens) + len(calls)))
        counted = "completion_tokens" not in turn
        if rate <= 0 and tokens:
            # Unpaced: the whole answer is there at once, as one read from a server would be.
            tokens = ["".join(tokens)]
        for i, token in enumerate(tokens):
            if rate > 0:
                # Pace against the clock rather than sleeping a fixed step, so slow
                # consumers do not make the simulated rate drift.
                delay = start + i / rate - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                if counted:  # usage so far, as a real stream's estimate would be
                    yield UsageUpdate(prompt_tokens, i)
            yield TextDelta(token)
        for call in calls:
            yield ToolCallComplete(call)
        yield UsageUpdate(prompt_tokens, completion_tokens)

    async def aclose(self) -> None:
        return None


def _number(turn: Mapping[str, Any], options: Mapping[str, Any], key: str, default: float) -> float:
    value = turn.get(key, options.get(key, default))
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        raise ProviderError(
            f"simulate.{key} must be a number, got {value!r}", retryable=False
        ) from None


def _tool_call(turn: int, i: int, raw: Any) -> ToolCall:
    if not isinstance(raw, Mapping) or not isinstance(raw.get("name"), str):
        raise ProviderError(
            f"simulate.script[{turn}].tool_calls[{i}] needs a name", retryable=False
        )
    arguments = raw.get("arguments", {})
    # A string is sent as written (scripts use it to send malformed JSON on purpose).
    text = arguments if isinstance(arguments, str) else orjson.dumps(arguments).decode()
    return ToolCall(str(raw.get("id") or f"call_{turn}_{i}"), raw["name"], text)
