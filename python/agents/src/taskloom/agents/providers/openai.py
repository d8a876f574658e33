"""The OpenAI-compatible chat completions API over httpx, streamed as server-sent events.

Works with OpenAI, vLLM, Ollama, llama.cpp server and OpenRouter. Rate limits (429) and
server errors (5xx) are retried with exponential backoff that honours `Retry-After`,
but only before the first token: a retry after that would repeat streamed text.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import orjson
import structlog

from taskloom.agents.providers import GenerationParams, Message, ProviderError, Usage

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
        usage: Usage,
    ) -> AsyncIterator[str]:
        body = {
            "model": model,
            "messages": list(messages),
            "temperature": params.temperature,
            "max_tokens": params.max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        attempt = 0
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
                    async for piece in _read_events(response, usage):
                        yield piece
                    return
            except httpx.TransportError as err:
                # Connection refused/reset before any text: retry like a 503.
                if attempt < self._max_retries and usage.completion_tokens == 0:
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


def _error_detail(response: httpx.Response) -> str:
    try:
        data = orjson.loads(response.content)
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            return str(data["error"].get("message", data["error"]))
    except orjson.JSONDecodeError:
        pass
    return response.text[:500] or response.reason_phrase


async def _read_events(response: httpx.Response, usage: Usage) -> AsyncIterator[str]:
    """Yield the content deltas of an SSE chat-completion stream and fill in `usage`."""
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
        if event.get("usage"):
            saw_usage = True
            usage.prompt_tokens = int(event["usage"].get("prompt_tokens") or 0)
            usage.completion_tokens = int(event["usage"].get("completion_tokens") or 0)
        for choice in event.get("choices") or ():
            content = (choice.get("delta") or {}).get("content")
            if content:
                pieces += 1
                if not saw_usage:
                    usage.completion_tokens = pieces  # an estimate until the usage event
                yield content
