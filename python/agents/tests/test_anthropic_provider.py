"""The Anthropic Messages API provider against a real local HTTP server that streams the
API's typed events (Starlette on uvicorn, loopback port chosen at run time)."""

from __future__ import annotations

import pytest

from taskloom.agents.providers import (
    GenerationParams,
    ProviderError,
    TextDelta,
    ThoughtDelta,
    ToolCall,
    ToolCallComplete,
    ToolCallDelta,
    ToolDefinition,
    UsageUpdate,
    text_of,
)
from taskloom.agents.providers.anthropic import AnthropicProvider, to_anthropic_messages

pytestmark = pytest.mark.asyncio

PARAMS = GenerationParams(temperature=0.1, max_tokens=64)
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]


async def collect(provider, messages=MESSAGES, tools=()):
    try:
        return [event async for event in provider.stream(messages, "claude-x", PARAMS, tools)]
    finally:
        await provider.aclose()


async def test_streams_text_and_usage_with_the_key_and_version_headers(fake_anthropic) -> None:
    events = await collect(AnthropicProvider(fake_anthropic.base_url, "sk-ant-test"))
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Hel", "lo", " world"]
    # input 11 + cache reads 2 as prompt; output from message_delta.
    assert [e for e in events if isinstance(e, UsageUpdate)][-1] == UsageUpdate(13, 5)
    body, headers = fake_anthropic.requests[0], fake_anthropic.headers[0]
    assert body["system"] == "Be brief."
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]
    assert (body["model"], body["max_tokens"], body["stream"]) == ("claude-x", 64, True)
    assert headers["x-api-key"] == "sk-ant-test"
    assert headers["anthropic-version"] == "2023-06-01"


async def test_tool_use_blocks_become_complete_tool_calls_and_thinking_thoughts(
    fake_anthropic,
) -> None:
    fake_anthropic.respond = lambda body: {
        "thinking": "add them",
        "tool_calls": [
            {"id": "toolu_1", "name": "add", "arguments": {"a": 1, "b": 2}},
            {"id": "toolu_2", "name": "calculator", "arguments": {"expression": "6*7"}},
        ],
    }
    tools = [ToolDefinition("add", "adds", {"type": "object"})]
    events = await collect(AnthropicProvider(fake_anthropic.base_url, "k"), tools=tools)
    assert ThoughtDelta("add them") in events
    assert len([e for e in events if isinstance(e, ToolCallDelta)]) == 4
    assert [e.call for e in events if isinstance(e, ToolCallComplete)] == [
        ToolCall("toolu_1", "add", '{"a":1,"b":2}'),
        ToolCall("toolu_2", "calculator", '{"expression":"6*7"}'),
    ]
    assert text_of(events) == ""
    assert fake_anthropic.requests[0]["tools"] == [
        {"name": "add", "description": "adds", "input_schema": {"type": "object"}}
    ]


async def test_tool_turns_are_sent_as_tool_use_and_tool_result_blocks(fake_anthropic) -> None:
    messages = [
        {"role": "user", "content": "add"},
        {
            "role": "assistant",
            "content": "Adding.",
            "tool_calls": [
                {"id": "a", "name": "add", "arguments": '{"a":1}'},
                {"id": "b", "name": "add", "arguments": '{"a":2}'},
            ],
        },
        {"role": "tool", "content": "1", "tool_call_id": "a", "name": "add"},
        {"role": "tool", "content": "2", "tool_call_id": "b", "name": "add"},
    ]
    await collect(AnthropicProvider(fake_anthropic.base_url, "k"), messages=messages)
    sent = fake_anthropic.requests[0]["messages"]
    assert sent[1] == {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Adding."},
            {"type": "tool_use", "id": "a", "name": "add", "input": {"a": 1}},
            {"type": "tool_use", "id": "b", "name": "add", "input": {"a": 2}},
        ],
    }
    # Both results in one user turn: the API wants the roles to alternate.
    assert sent[2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "a", "content": "1"},
            {"type": "tool_result", "tool_use_id": "b", "content": "2"},
        ],
    }
    assert len(sent) == 3


async def test_overloaded_is_a_retryable_error_with_retry_after(fake_anthropic) -> None:
    fake_anthropic.respond = lambda body: 529
    fake_anthropic.retry_after = "3"
    with pytest.raises(ProviderError, match="HTTP 529: busy") as err:
        await collect(AnthropicProvider(fake_anthropic.base_url, "k"))
    assert (err.value.retryable, err.value.status, err.value.retry_after_s) == (True, 529, 3.0)


async def test_system_messages_join_and_same_role_turns_merge() -> None:
    system, turns = to_anthropic_messages(
        [
            {"role": "system", "content": "A"},
            {"role": "system", "content": "B"},
            {"role": "user", "content": "x"},
            {"role": "user", "content": "y"},
        ]
    )
    assert system == "A\n\nB"
    assert turns == [
        {"role": "user", "content": [{"type": "text", "text": "x"}, {"type": "text", "text": "y"}]}
    ]
