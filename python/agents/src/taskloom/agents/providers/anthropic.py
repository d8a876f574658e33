"""Anthropic's Messages API over httpx, streamed as server-sent events.

Our chat messages become the API's: system messages join the top-level `system`, an
assistant turn's tool calls become `tool_use` blocks, and tool results become
`tool_result` blocks in the next user message (consecutive messages of one role merge, as
the API wants roles to alternate). From the stream: `text_delta` → text, `thinking_delta`
→ thoughts, `input_json_delta` pieces of each `tool_use` block → one complete tool call,
and `message_start` / `message_delta` usage → token counts (prompt = input tokens,
cache reads and cache writes included). One attempt per call, like the OpenAI provider.
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

DEFAULT_VERSION = "2023-06-01"
# Anthropic's streamed error types that another attempt may cure.
_RETRYABLE_ERRORS = frozenset({"overloaded_error", "api_error", "rate_limit_error"})


class AnthropicProvider:
    name = "anthropic"

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        connection: ConnectionSettings | None = None,
        version: str = DEFAULT_VERSION,
        name: str = "anthropic",
    ) -> None:
        headers = {
            "Accept": "text/event-stream",
            "anthropic-version": version,
            "x-api-key": api_key,
        }
        self.name = name
        self._client = build_client(connection or ConnectionSettings(), headers)
        self._url = base_url.rstrip("/") + "/messages"

    async def aclose(self) -> None:
        await self._client.aclose()

    async def stream(
        self,
        messages: Sequence[Message],
        model: str,
        params: GenerationParams,
        tools: Sequence[ToolDefinition] = (),
    ) -> AsyncIterator[ProviderEvent]:
        system, turns = to_anthropic_messages(messages)
        body: dict[str, Any] = {
            "model": model,
            "messages": turns,
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "stream": True,
        }
        if system:
            body["system"] = system
        if tools:
            body["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": dict(t.parameters)}
                for t in tools
            ]
        async for event in post_events(self._client, self._url, body, self.name, _read_events):
            yield event


def to_anthropic_messages(messages: Sequence[Message]) -> tuple[str, list[dict[str, Any]]]:
    """Our messages as the API's `system` text and its alternating `messages`."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})

    for message in messages:
        role, content = message["role"], message["content"]
        if role == "system":
            system.append(content)
        elif role == "tool":
            add(
                "user",
                [
                    {
                        "type": "tool_result",
                        "tool_use_id": message.get("tool_call_id", ""),
                        "content": content,
                    }
                ],
            )
        elif role == "assistant":
            blocks: list[dict[str, Any]] = [{"type": "text", "text": content}] if content else []
            for call in message.get("tool_calls", ()):
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": call["id"],
                        "name": call["name"],
                        "input": _arguments(call["arguments"]),
                    }
                )
            if blocks:
                add("assistant", blocks)
        else:
            add("user", [{"type": "text", "text": content}])
    return "\n\n".join(system), turns


def _arguments(text: str) -> Any:
    try:
        return orjson.loads(text or "{}")
    except orjson.JSONDecodeError:
        return {}  # the model's malformed JSON was answered with a tool error already


@dataclass
class _Block:
    kind: str
    id: str = ""
    name: str = ""
    arguments: str = ""


async def _read_events(response: httpx.Response) -> AsyncIterator[ProviderEvent]:
    """Turn a Messages API event stream into provider events."""
    blocks: dict[int, _Block] = {}
    prompt_tokens = completion_tokens = 0
    async for data in sse_data(response):
        try:
            event: dict[str, Any] = orjson.loads(data)
        except orjson.JSONDecodeError as err:
            raise ProviderError(f"malformed stream event: {data[:200]}", retryable=True) from err
        kind = event.get("type")
        if kind == "message_start":
            usage = (event.get("message") or {}).get("usage") or {}
            prompt_tokens = sum(
                int(usage.get(k) or 0)
                for k in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
            )
            completion_tokens = int(usage.get("output_tokens") or 0)
            yield UsageUpdate(prompt_tokens, completion_tokens)
        elif kind == "content_block_start":
            block = event.get("content_block") or {}
            index = int(event.get("index", len(blocks)))
            blocks[index] = _Block(
                block.get("type", ""), block.get("id", ""), block.get("name", "")
            )
            if block.get("type") == "text" and block.get("text"):
                yield TextDelta(block["text"])
        elif kind == "content_block_delta":
            index = int(event.get("index", 0))
            delta = event.get("delta") or {}
            dtype = delta.get("type")
            if dtype == "text_delta" and delta.get("text"):
                yield TextDelta(delta["text"])
            elif dtype == "thinking_delta" and delta.get("thinking"):
                yield ThoughtDelta(delta["thinking"])
            elif dtype == "input_json_delta":
                current = blocks.setdefault(index, _Block("tool_use"))
                piece = delta.get("partial_json") or ""
                current.arguments += piece
                yield ToolCallDelta(index, current.id, current.name, piece)
        elif kind == "message_delta":
            usage = event.get("usage") or {}
            if "output_tokens" in usage:
                completion_tokens = int(usage["output_tokens"] or 0)
                yield UsageUpdate(prompt_tokens, completion_tokens)
        elif kind == "error":
            error = event.get("error") or {}
            raise ProviderError(
                f"stream error: {error.get('type', 'error')}: {error.get('message', error)}",
                retryable=error.get("type") in _RETRYABLE_ERRORS,
            )
        elif kind == "message_stop":
            break
    for index in sorted(blocks):
        block = blocks[index]
        if block.kind != "tool_use":
            continue
        if not block.name:
            raise ProviderError(f"tool_use block {index} arrived without a name", retryable=True)
        call_id = block.id or f"toolu_{index}"
        yield ToolCallComplete(ToolCall(call_id, block.name, block.arguments or "{}"))
