"""The OpenAI-compatible provider against a real local HTTP server speaking the chat
completions API (Starlette on uvicorn, loopback port chosen at run time)."""

from __future__ import annotations

import pytest

from taskloom.agents.providers import (
    GenerationParams,
    ProviderError,
    ProviderEvent,
    TextDelta,
    ThoughtDelta,
    ToolCall,
    ToolCallComplete,
    ToolCallDelta,
    ToolDefinition,
    UsageUpdate,
    text_of,
)
from taskloom.agents.providers.openai import OpenAIProvider, retry_after_seconds

pytestmark = pytest.mark.asyncio

PARAMS = GenerationParams(temperature=0.1, max_tokens=64)
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]


async def collect(provider: OpenAIProvider, tools=(), messages=MESSAGES) -> list[ProviderEvent]:
    return [event async for event in provider.stream(messages, "m", PARAMS, tools)]


async def test_streams_content_deltas_and_usage(fake_openai) -> None:
    provider = OpenAIProvider(fake_openai.base_url, "sk-test")
    try:
        events = await collect(provider)
    finally:
        await provider.aclose()
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Hel", "lo", " world"]
    assert [e for e in events if isinstance(e, UsageUpdate)][-1] == UsageUpdate(7, 3)
    body = fake_openai.requests[0]
    assert body["stream"] is True and body["model"] == "m"
    assert body["messages"] == MESSAGES
    assert body["max_tokens"] == 64
    assert "tools" not in body
    assert fake_openai.headers[0]["authorization"] == "Bearer sk-test"


async def test_tool_calls_are_assembled_from_streamed_argument_deltas(fake_openai) -> None:
    fake_openai.respond = lambda body: {
        "reasoning": "think first",
        "tool_calls": [
            {"id": "a", "name": "add", "arguments": {"a": 1, "b": 2}},
            {"id": "b", "name": "calculator", "arguments": {"expression": "2 * 21"}},
        ],
    }
    tools = [ToolDefinition("add", "adds", {"type": "object"})]
    provider = OpenAIProvider(fake_openai.base_url)
    try:
        events = await collect(provider, tools)
    finally:
        await provider.aclose()
    assert ThoughtDelta("think first") in events
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert len(deltas) == 4 and {d.index for d in deltas} == {0, 1}
    complete = [e.call for e in events if isinstance(e, ToolCallComplete)]
    assert complete == [
        ToolCall("a", "add", '{"a":1,"b":2}'),
        ToolCall("b", "calculator", '{"expression":"2 * 21"}'),
    ]
    assert text_of(events) == ""
    assert fake_openai.requests[0]["tools"] == [
        {
            "type": "function",
            "function": {"name": "add", "description": "adds", "parameters": {"type": "object"}},
        }
    ]


async def test_tool_turns_are_sent_in_the_api_format(fake_openai) -> None:
    messages = [
        {"role": "user", "content": "add"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"id": "a", "name": "add", "arguments": '{"a":1}'}],
        },
        {"role": "tool", "content": '{"sum":1}', "tool_call_id": "a", "name": "add"},
    ]
    provider = OpenAIProvider(fake_openai.base_url)
    try:
        await collect(provider, messages=messages)
    finally:
        await provider.aclose()
    sent = fake_openai.requests[0]["messages"]
    assert sent[1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "add", "arguments": '{"a":1}'}}
        ],
    }
    assert sent[2] == {"role": "tool", "content": '{"sum":1}', "tool_call_id": "a"}


async def test_retries_429_then_succeeds(fake_openai) -> None:
    failures = [429, 503]
    fake_openai.respond = lambda body: failures.pop(0) if failures else {"text": "Hello world"}
    provider = OpenAIProvider(fake_openai.base_url, max_retries=3, backoff_initial_s=0.01)
    try:
        assert text_of(await collect(provider)) == "Hello world"
    finally:
        await provider.aclose()
    assert len(fake_openai.requests) == 3
    assert "authorization" not in fake_openai.headers[0]  # no key configured (e.g. Ollama)


async def test_gives_up_after_max_retries_with_retryable_error(fake_openai) -> None:
    fake_openai.respond = lambda body: 429
    provider = OpenAIProvider(fake_openai.base_url, max_retries=1, backoff_initial_s=0.01)
    try:
        with pytest.raises(ProviderError, match="HTTP 429: failure 429") as err:
            await collect(provider)
    finally:
        await provider.aclose()
    assert err.value.retryable is True
    assert len(fake_openai.requests) == 2


async def test_client_error_is_not_retried(fake_openai) -> None:
    fake_openai.respond = lambda body: 400
    provider = OpenAIProvider(fake_openai.base_url, max_retries=3, backoff_initial_s=0.01)
    try:
        with pytest.raises(ProviderError, match="HTTP 400") as err:
            await collect(provider)
    finally:
        await provider.aclose()
    assert err.value.retryable is False
    assert len(fake_openai.requests) == 1


async def test_retry_after_parses_seconds_and_dates() -> None:
    assert retry_after_seconds("2") == 2.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None
