"""The OpenAI-compatible chat completions API over httpx, streamed as server-sent events.

Works with OpenAI, vLLM, Ollama, llama.cpp server and OpenRouter. Tool calling uses the
API's `tools` / `tool_calls`; argument deltas are assembled per call index and each call
is yielded complete once the stream has ended. Reasoning deltas (`reasoning_content`, as
vLLM and DeepSeek send, or `reasoning`, as OpenRouter and Ollama do) become thoughts.
Rate limits (429) and server errors (5xx) are retried with exponential backoff that
honours `Retry-After`, but only before the first event: a retry after that would repeat
streamed text.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import structlog

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

log = structlog.get_logger(__name__)

_RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


def retry_after_seconds(value: str | None) -> float | None:
    """Parse a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class OpenAIProvider:
    name = "openai"

    def __init__(
        self,
        base_url: str,
        api_key: str = "",
        *,
        timeout_s: float = 120.0,
        max_retries: int = 3,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 20.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        headers = {"Accept": "text/event-stream"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s, connect=10.0), headers=headers
        )
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._max_retries = max_retries
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s

    async def aclose(self) -> None:
        await self._client.aclose()

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self._backoff_max_s)
        ceiling = min(self._backoff_max_s, self._backoff_initial_s * 2**attempt)
        return random.uniform(ceiling / 2, ceiling)

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
        attempt = 0
        yielded = False
        while True:
            try:
                async with self._client.stream("POST", self._url, json=body) as response:
                    if response.status_code != 200:
                        await response.aread()
                        detail = _error_detail(response)
                        if (
                            response.status_code in _RETRYABLE_STATUS
                            and attempt < self._max_retries
                        ):
                            delay = self._backoff(
                                attempt, retry_after_seconds(response.headers.get("retry-after"))
                            )
                            log.warning(
                                "llm call failed, retrying",
                                provider=self.name,
                                status=response.status_code,
                                attempt=attempt + 1,
                                delay_s=round(delay, 3),
                            )
                            attempt += 1
                            await asyncio.sleep(delay)
                            continue
                        raise ProviderError(
                            f"{self.name} returned HTTP {response.status_code}: {detail}",
                            retryable=response.status_code in _RETRYABLE_STATUS,
                        )
                    async for event in _read_events(response):
                        yielded = True
                        yield event
                    return
            except httpx.TransportError as err:
                # Connection refused/reset before any output: retry like a 503.
                if attempt < self._max_retries and not yielded:
                    delay = self._backoff(attempt, None)
                    log.warning(
                        "llm call failed, retrying",
                        provider=self.name,
                        error=str(err) or type(err).__name__,
                        attempt=attempt + 1,
                        delay_s=round(delay, 3),
                    )
                    attempt += 1
                    await asyncio.sleep(delay)
                    continue
                raise ProviderError(
                    f"{self.name} request failed: {str(err) or type(err).__name__}", retryable=True
                ) from err


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


def _error_detail(response: httpx.Response) -> str:
    try:
        data = orjson.loads(response.content)
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            return str(data["error"].get("message", data["error"]))
    except orjson.JSONDecodeError:
        pass
    return response.text[:500] or response.reason_phrase


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
    async for line in response.aiter_lines():
        if not line.startswith("data:"):
            continue  # blank separators, comments (": ping"), event/id fields
        data = line[5:].strip()
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
