"""The OpenAI-compatible provider against a real local HTTP server speaking the chat
completions API (Starlette on uvicorn, loopback port chosen at run time)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import pytest_asyncio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from taskloom.agents.http_server import HttpServer
from taskloom.agents.providers import GenerationParams, ProviderError, Usage
from taskloom.agents.providers.openai import OpenAIProvider, retry_after_seconds

pytestmark = pytest.mark.asyncio

PARAMS = GenerationParams(temperature=0.1, max_tokens=64)
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]


class FakeOpenAI:
    """Answers `/v1/chat/completions`; `failures` lists statuses to return first, in order."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.failures: list[int] = []
        self.pieces = ["Hel", "lo", " world"]

    async def completions(self, request: Request) -> Response:
        self.requests.append(orjson.loads(await request.body()))
        self.headers.append(dict(request.headers))
        if self.failures:
            status = self.failures.pop(0)
            body = {"error": {"message": f"failure {status}", "type": "test"}}
            return JSONResponse(body, status_code=status, headers={"Retry-After": "0"})
        return StreamingResponse(self._events(), media_type="text/event-stream")

    async def _events(self) -> AsyncIterator[bytes]:
        yield b": keep-alive comment\n\n"
        base = {"id": "c1", "object": "chat.completion.chunk", "model": "m"}
        first = {**base, "choices": [{"index": 0, "delta": {"role": "assistant"}}]}
        yield b"data: " + orjson.dumps(first) + b"\n\n"
        for piece in self.pieces:
            event = {**base, "choices": [{"index": 0, "delta": {"content": piece}}]}
            yield b"data: " + orjson.dumps(event) + b"\n\n"
        usage = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
        yield b"data: " + orjson.dumps({**base, "choices": [], "usage": usage}) + b"\n\n"
        yield b"data: [DONE]\n\n"


@pytest_asyncio.fixture
async def fake_openai() -> AsyncIterator[tuple[FakeOpenAI, str]]:
    fake = FakeOpenAI()
    app = Starlette(routes=[Route("/v1/chat/completions", fake.completions, methods=["POST"])])
    server = HttpServer(app, "127.0.0.1:0")
    server.start()
    await asyncio.sleep(0)
    yield fake, f"http://{server.addr}/v1"
    await server.stop()


async def collect(provider: OpenAIProvider, usage: Usage) -> list[str]:
    return [piece async for piece in provider.stream(MESSAGES, "m", PARAMS, usage)]


async def test_streams_content_deltas_and_usage(fake_openai) -> None:
    fake, base_url = fake_openai
    provider = OpenAIProvider(base_url, "sk-test")
    usage = Usage()
    try:
        assert await collect(provider, usage) == ["Hel", "lo", " world"]
    finally:
        await provider.aclose()
    assert (usage.prompt_tokens, usage.completion_tokens) == (7, 3)
    body = fake.requests[0]
    assert body["stream"] is True and body["model"] == "m"
    assert body["messages"] == MESSAGES
    assert body["max_tokens"] == 64
    assert fake.headers[0]["authorization"] == "Bearer sk-test"


async def test_retries_429_then_succeeds(fake_openai) -> None:
    fake, base_url = fake_openai
    fake.failures = [429, 503]
    provider = OpenAIProvider(base_url, max_retries=3, backoff_initial_s=0.01)
    try:
        assert "".join(await collect(provider, Usage())) == "Hello world"
    finally:
        await provider.aclose()
    assert len(fake.requests) == 3
    assert "authorization" not in fake.headers[0]  # no key configured (e.g. Ollama)


async def test_gives_up_after_max_retries_with_retryable_error(fake_openai) -> None:
    fake, base_url = fake_openai
    fake.failures = [429, 429, 429]
    provider = OpenAIProvider(base_url, max_retries=1, backoff_initial_s=0.01)
    try:
        with pytest.raises(ProviderError, match="HTTP 429: failure 429") as err:
            await collect(provider, Usage())
    finally:
        await provider.aclose()
    assert err.value.retryable is True
    assert len(fake.requests) == 2


async def test_client_error_is_not_retried(fake_openai) -> None:
    fake, base_url = fake_openai
    fake.failures = [400]
    provider = OpenAIProvider(base_url, max_retries=3, backoff_initial_s=0.01)
    try:
        with pytest.raises(ProviderError, match="HTTP 400") as err:
            await collect(provider, Usage())
    finally:
        await provider.aclose()
    assert err.value.retryable is False
    assert len(fake.requests) == 1


def test_retry_after_parses_seconds_and_dates() -> None:
    assert retry_after_seconds("2") == 2.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None
