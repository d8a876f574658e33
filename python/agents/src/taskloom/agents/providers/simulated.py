"""The simulated LLM: a deterministic answer at a configurable latency and token rate, for
demos, tests and benchmarks. Every answer says it is simulated."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Sequence

from taskloom.agents.providers import GenerationParams, Message, Usage

_TOKEN = re.compile(r"\S+\s*")


def count_tokens(text: str) -> int:
    """A rough token count (whitespace-separated words), good enough for simulation."""
    return len(_TOKEN.findall(text))


def simulated_answer(messages: Sequence[Message], model: str) -> str:
    prompt = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    prompt = " ".join(prompt.split())
    if len(prompt) > 200:
        prompt = prompt[:197] + "..."
    return (
        f"[simulated] This is a simulated response from model {model}, not a real LLM. "
        f'You asked: "{prompt}". A real provider would answer here; configure an agent '
        "with provider openai to use one."
    )


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
        usage: Usage,
    ) -> AsyncIterator[str]:
        usage.prompt_tokens = sum(count_tokens(m["content"]) for m in messages)
        tokens = _TOKEN.findall(simulated_answer(messages, model))[: params.max_tokens]
        loop = asyncio.get_running_loop()
        start = loop.time() + self._latency_s
        for i, token in enumerate(tokens):
            # Pace against the clock rather than sleeping a fixed step, so slow
            # consumers do not make the simulated rate drift.
            due = start + (i / self._tokens_per_second if self._tokens_per_second > 0 else 0.0)
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            usage.completion_tokens += 1
            yield token

    async def aclose(self) -> None:
        return None
