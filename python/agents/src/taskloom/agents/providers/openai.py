"""The OpenAI-compatible chat completions API over httpx, streamed as server-sent events.

Works with OpenAI, vLLM, Ollama, llama.cpp server and OpenRouter. Tool calling uses the
API's `tools` / `tool_calls`; argument deltas are assembled per call index and each call
is yielded complete once the stream has ended. Reasoning deltas (`reasoning_content`, as
vLLM and DeepSeek send, or `reasoning`, as OpenRouter and Ollama do) become thoughts.
One attempt per call: retries, limits and the breaker belong to the endpoint around it.
httpx directly rather than the `openai` SDK: `make bench SCENARIO=providers` measures
this path against the SDK on the same server (`openai_path_completions_per_s`), and it
shares one client, pool and error handling with the Anthropic provider.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from taskloom.agents.endpoints import ConnectionSettings
from taskloom.agents.providers.base import (
    GenerationParams,
    Message,
    ProviderError,
    ProviderEvent,
    TextDelta,
    ThoughtDelta,
    ToolCall,
    ToolCallComplete,
    ToolCallDelta,
    ToolDefinition,
    UsageUpdate,
)
from taskloom.agents.providers.http import build_client, post_events, sse_data


class OpenAIProvider:
    name = "openai"

    def __init__(
        self,
        base_url: str,
        api_key: str = "",
        *,
        connection: ConnectionSettings | None = None,
        name: str = "openai",
    ) -> None:
        headers = {"Accept": "text/event-stream"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.name = name
        self._client = build_client(connection or ConnectionSettings(), headers)
        self._url = base_url.rstrip("/") + "/chat/completions"

    async def aclose(self) -> None:
        await self._client.aclose()

    async def stream(
        self,
        messages: Sequence[Message],
        model: str,
        params: GenerationParams,
        tools: Sequence[ToolDefinition] = (),
    ) -> AsyncIterator[ProviderEvent]:
        body: dict[str, Any] = {
            "model": model,
            "messages": [to_openai_message(m) for m in messages],
            "temperature": params.temperature,
            "max_tokens": params.max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if tools:
            body["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": t.name,
                        "description": t.description,
                        "parameters": dict(t.parameters),
                    },
                }
                for t in tools
            ]
        async for event in post_events(self._client, self._url, body, self.name, _read_events):
            yield event


def to_openai_message(message: Message) -> dict[str, Any]:
    """Our message shape to the chat completions API's."""
    out: dict[str, Any] = {"role": message["role"], "content": message["content"]}
    if calls := message.get("tool_calls"):
        out["tool_calls"] = [
            {
                "id": c["id"],
                "type": "function",
                "function": {"name": c["name"], "arguments": c["arguments"]},
            }
            for c in calls
        ]
        if not message["content"]:
            out["content"] = None  # the API's form for a turn that only calls tools
    if "tool_call_id" in message:
        out["tool_call_id"] = message["tool_call_id"]
    return out


@dataclass
class _PartialCall:
    id: str = ""
    name: str = ""
    arguments: str = ""


async def _read_events(response: httpx.Response) -> AsyncIterator[ProviderEvent]:
    """Turn an SSE chat-completion stream into provider events."""
    calls: dict[int, _PartialCall] = {}
    pieces = 0
    saw_usage = False
    async for data in sse_data(response):
        if data == "[DONE]":
            break
        try:
            event: dict[str, Any] = orjson.loads(data)
        except orjson.JSONDecodeError as err:
            raise ProviderError(f"malformed stream event: {data[:200]}", retryable=True) from err
        if "error" in event:
            error = event["error"]
            message = error.get("message", error) if isinstance(error, dict) else error
            raise ProviderError(f"stream error: {message}", retryable=True)
        for choice in event.get("choices") or ():
            delta = choice.get("delta") or {}
            thought = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(thought, str) and thought:
                yield ThoughtDelta(thought)
            content = delta.get("content")
            if content:
                pieces += 1
                yield TextDelta(content)
                if not saw_usage:  # an estimate until the usage event
                    yield UsageUpdate(0, pieces)
            for raw in delta.get("tool_calls") or ():
                index = int(raw.get("index", 0))
                partial = calls.setdefault(index, _PartialCall())
                function = raw.get("function") or {}
                partial.id = raw.get("id") or partial.id
                partial.name += function.get("name") or ""
                piece = function.get("arguments") or ""
                partial.arguments += piece
                yield ToolCallDelta(index, partial.id, partial.name, piece)
        if event.get("usage"):
            saw_usage = True
            yield UsageUpdate(
                int(event["usage"].get("prompt_tokens") or 0),
                int(event["usage"].get("completion_tokens") or 0),
            )
    for index in sorted(calls):
        partial = calls[index]
        if not partial.name:
            raise ProviderError(f"tool call {index} arrived without a name", retryable=True)
        call_id = partial.id or f"call_{index}"
        yield ToolCallComplete(ToolCall(call_id, partial.name, partial.arguments or "{}"))
