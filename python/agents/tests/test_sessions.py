"""Session memory: the Redis store (real redis-server) keeps a sliding window with a TTL
per tenant and session; the agent loop sends a session's history to the model, trimmed to
the agent's context window, and records each task's turn (OpenAI-compatible fake server
over HTTP, so the test sees exactly what the model was sent)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio

from taskloom.agents.catalog import AgentSpec, Catalog, ProviderKind, load_catalog
from taskloom.agents.memory.sessions import SessionMemory, fit_history
from taskloom.agents.providers.base import Message
from taskloom.agents.providers.openai import OpenAIProvider
from taskloom.agents.runtime import AgentError, AgentRuntime
from taskloom.agents.tokenizer import estimate_prompt_tokens
from taskloom.agents.tools.base import TaskInfo
from taskloom.sdk.sessions import RedisSessions, session_key
from taskloom.testing.redis_server import redis_server

pytestmark = pytest.mark.asyncio


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


@pytest_asyncio.fixture
async def sessions(redis_url: str) -> AsyncIterator[RedisSessions]:
    store = RedisSessions(redis_url, max_messages=4, ttl_s=60)
    await store._redis.flushdb()
    yield store
    await store.aclose()


def turn(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]


async def test_a_session_keeps_the_newest_messages_with_a_ttl(sessions: RedisSessions) -> None:
    assert await sessions.load("acme", "s1") is None
    for i in range(3):
        await sessions.append("acme", "s1", turn(i))
    session = await sessions.load("acme", "s1")
    assert session is not None
    assert [m["content"] for m in session.messages] == ["q1", "a1", "q2", "a2"]
    assert session.ttl_s is not None and 0 < session.ttl_s <= 60


async def test_tenants_never_share_a_session(sessions: RedisSessions) -> None:
    await sessions.append("acme", "s1", turn(1))
    await sessions.append("globex", "s1", turn(2))
    # A tenant whose name ends where another's session id begins names another list.
    assert session_key("a:b", "c") != session_key("a", "b:c")
    acme, globex = await sessions.load("acme", "s1"), await sessions.load("globex", "s1")
    assert acme is not None and globex is not None
    assert acme.messages[0]["content"] == "q1" and globex.messages[0]["content"] == "q2"
    assert await sessions.delete("acme", "s1") is True
    assert await sessions.load("acme", "s1") is None
    assert await sessions.load("globex", "s1") is not None
    assert await sessions.delete("acme", "s1") is False


def _spec(context_window: int, max_tokens: int = 50) -> AgentSpec:
    return AgentSpec(name="chat", model="m", context_window=context_window, max_tokens=max_tokens)


async def test_history_is_trimmed_oldest_turn_first_to_fit_the_context_window() -> None:
    history: list[Message] = []
    for i in range(40):
        history += [
            {"role": "user", "content": f"question number {i} " + "word " * 20},
            {"role": "assistant", "content": f"answer number {i} " + "word " * 20},
        ]
    new: list[Message] = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "the new question"},
    ]
    spec = _spec(context_window=400)
    fitted = fit_history(spec, history, new)
    assert fitted[0] == new[0] and fitted[-1] == new[1]
    kept = fitted[1:-1]
    assert 0 < len(kept) < len(history)
    assert kept == history[-len(kept) :]  # the newest turns, whole
    assert kept[0]["role"] == "user"
    assert estimate_prompt_tokens(fitted) <= spec.context_window - spec.max_tokens
    # One more turn would not have fitted.
    assert estimate_prompt_tokens([new[0], *history[-len(kept) - 2 :], new[1]]) > 350
    # Everything fits in a large window; nothing fits in one smaller than the new messages.
    assert fit_history(_spec(1_000_000), history, new)[1:-1] == history
    assert fit_history(_spec(60, max_tokens=50), history, new) == new


async def test_a_session_spans_three_tasks_and_remembers(fake_openai, sessions, telemetry) -> None:
    spec = load_catalog()["assistant"].model_copy(
        update={"provider": ProviderKind.OPENAI, "cache": False}
    )
    answers = iter(["Nice to meet you, Ada.", "Noted: you like tea.", "You are Ada; tea."])
    fake_openai.respond = lambda body: {"text": next(answers)}
    provider = OpenAIProvider(fake_openai.base_url)
    runtime = AgentRuntime(
        Catalog([spec]), {"openai": provider}, telemetry, sessions=SessionMemory(sessions)
    )
    task = TaskInfo("t", "assistant", tenant="acme", session_id="chat-1")
    try:
        for prompt in ("I am Ada.", "I like tea.", "Who am I and what do I like?"):
            result = await runtime.run("assistant", prompt, _ignore, task)
    finally:
        await provider.aclose()
    assert result.output["text"] == "You are Ada; tea."
    sent: list[dict[str, Any]] = fake_openai.requests[-1]["messages"]
    contents = [m["content"] for m in sent if m["role"] != "system"]
    assert contents == [
        "I am Ada.",
        "Nice to meet you, Ada.",
        "I like tea.",
        "Noted: you like tea.",
        "Who am I and what do I like?",
    ]
    stored = await sessions.load("acme", "chat-1")
    assert stored is not None and stored.messages[-1]["content"] == "You are Ada; tea."
    # Another tenant's task with the same session id starts afresh.
    other = await sessions.load("globex", "chat-1")
    assert other is None


async def test_a_session_without_a_store_is_a_clear_error(runtime_factory) -> None:
    runtime = runtime_factory()
    task = TaskInfo("t", "assistant", session_id="s")
    with pytest.raises(AgentError, match="sessions_redis_url") as err:
        await runtime.run("assistant", "hi", _ignore, task)
    assert not err.value.retryable


async def _ignore(event: object) -> None:
    return None
