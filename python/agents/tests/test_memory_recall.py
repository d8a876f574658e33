"""Automatic recall (`memory: {auto_recall: k, min_score}`): before the first LLM call the
agent's memories most similar to the user's input are in the system prompt, with no tool
call; and retention (`max_age_s`, `min_importance`) drops facts before they are recalled.
Tested on the real vector service and a local OpenAI-compatible HTTP server that records
the prompt it was sent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from taskloom.agents.catalog import Catalog, CatalogError, ProviderKind, load_catalog
from taskloom.agents.catalog.spec import MemoryOptions
from taskloom.agents.memory.long_term import RETAIN_INTERVAL_S, LongTermMemory
from taskloom.agents.memory.recall import SECTION_TITLE
from taskloom.agents.providers.openai import OpenAIProvider
from taskloom.agents.runtime import AgentError, AgentRuntime
from taskloom.agents.service import build_worker
from taskloom.agents.settings import Settings
from taskloom.agents.tools import ToolRegistry, builtin_factories
from taskloom.agents.tools.base import TaskInfo
from taskloom.sdk.collections import Collections
from taskloom.sdk.embeddings import HashingEmbedder

pytestmark = pytest.mark.asyncio

TEAL = "Ada's favourite colour is teal"
DEBIAN = "The build server runs Debian"


class Clock:
    """The wall time the memory stores and ages facts by, set by the test."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(1_800_000_000.0)


@pytest_asyncio.fixture
async def memory(vector_addr: str, clock: Clock) -> AsyncIterator[LongTermMemory]:
    store = Collections(vector_addr, HashingEmbedder(64), kind="m")
    yield LongTermMemory(store, clock=clock)
    await store.aclose()


@pytest_asyncio.fixture
async def provider(fake_openai: Any) -> AsyncIterator[OpenAIProvider]:
    provider = OpenAIProvider(fake_openai.base_url)
    yield provider
    await provider.aclose()


@pytest.fixture
def agent_runtime(provider: OpenAIProvider, telemetry: Any) -> Any:
    """A runtime whose assistant speaks to the recording server with these memory options."""

    def make(memory: LongTermMemory | None, **options: Any) -> AgentRuntime:
        update = {"provider": ProviderKind.OPENAI, "cache": False}
        spec = load_catalog()["assistant"].model_copy(
            update={**update, "memory": MemoryOptions(**options)}
        )
        return AgentRuntime(Catalog([spec]), {"openai": provider}, telemetry, memory=memory)

    return make


async def ask(runtime: AgentRuntime, prompt: str, tenant: str = "acme") -> None:
    async def ignore(event: object) -> None:
        return None

    await runtime.run("assistant", prompt, ignore, TaskInfo("t", "assistant", tenant))


def system_prompt(request: dict[str, Any]) -> str:
    systems = [m["content"] for m in request["messages"] if m["role"] == "system"]
    assert len(systems) == 1, request["messages"]
    return str(systems[0])


async def test_the_closest_memories_are_in_the_first_prompt_without_a_tool_call(
    memory: LongTermMemory, agent_runtime: Any, fake_openai: Any
) -> None:
    await memory.remember("acme", "assistant", TEAL, 0.9)
    await memory.remember("acme", "assistant", DEBIAN, 0.2)
    runtime = agent_runtime(memory, auto_recall=3, min_score=0.3)
    await ask(runtime, "What is Ada's favourite colour?")
    (request,) = fake_openai.requests  # one LLM call: no tool was called to recall
    prompt = system_prompt(request)
    assert prompt.startswith("You are Taskloom's assistant.")
    assert f"{SECTION_TITLE}\n- {TEAL}" in prompt
    assert DEBIAN not in prompt  # under min_score: unrelated to the question
    assert request["messages"][-1] == {"role": "user", "content": "What is Ada's favourite colour?"}
    # Another tenant's agent of the same name recalls nothing of acme's.
    await ask(runtime, "What is Ada's favourite colour?", tenant="globex")
    assert SECTION_TITLE not in system_prompt(fake_openai.requests[1])


async def test_recall_is_off_by_default(
    memory: LongTermMemory, agent_runtime: Any, fake_openai: Any
) -> None:
    await memory.remember("acme", "assistant", TEAL, 0.9)
    await ask(agent_runtime(memory), "What is Ada's favourite colour?")
    assert SECTION_TITLE not in system_prompt(fake_openai.requests[0])


async def test_recall_without_a_vector_service_fails_the_task_saying_so(
    agent_runtime: Any, fake_openai: Any
) -> None:
    runtime = agent_runtime(None, auto_recall=2)
    with pytest.raises(AgentError, match="needs a vector service") as err:
        await ask(runtime, "anything")
    assert not err.value.retryable and fake_openai.requests == []


async def test_a_worker_without_a_vector_service_refuses_a_recalling_agent(
    tmp_path: Path, telemetry: Any
) -> None:
    (tmp_path / "recaller.yaml").write_text(
        "name: recaller\nprovider: simulated\nmodel: sim-1\nmemory: {auto_recall: 3}\n"
    )
    settings = Settings(agents_dir=[tmp_path], vector_addr="")
    with pytest.raises(CatalogError, match=r"recaller.yaml: agent 'recaller' .*set vector_addr"):
        build_worker(settings, telemetry, None, ToolRegistry(builtin_factories()))


async def test_retention_drops_old_and_unimportant_facts_before_recall(
    memory: LongTermMemory, agent_runtime: Any, fake_openai: Any, clock: Clock
) -> None:
    now = clock.now
    clock.now = now - 7200
    await memory.remember("retained", "assistant", "Ada's old favourite colour was red", 0.9)
    clock.now = now
    await memory.remember("retained", "assistant", TEAL, 0.9)
    await memory.remember("retained", "assistant", "Ada's favourite colour guess: blue", 0.1)
    runtime = agent_runtime(
        memory, auto_recall=5, min_score=0.0, max_age_s=3600, min_importance=0.5
    )
    await ask(runtime, "What is Ada's favourite colour?", tenant="retained")
    prompt = system_prompt(fake_openai.requests[0])
    assert TEAL in prompt
    assert "red" not in prompt and "blue" not in prompt
    # Dropped for good, in the vector service: a search without retention finds only teal.
    facts = await memory.recall("retained", "assistant", "Ada's favourite colour", 5, 500)
    assert [f["fact"] for f in facts] == [TEAL]


async def test_retention_runs_at_most_once_per_interval_for_each_tenant_and_agent(
    memory: LongTermMemory, clock: Clock
) -> None:
    """Retention scans the whole collection in the vector service, so it is not repeated on
    every call: a fact that ages out within the interval is dropped at the next run."""
    retention = MemoryOptions(max_age_s=3600)
    start = clock.now
    clock.now = start - 7200
    await memory.remember("throttled", "assistant", "Ada's old favourite colour was red", 0.9)
    await memory.remember("throttled", "assistant", "Ada's old favourite food was soup", 0.9)
    await memory.remember("throttled", "other-agent", "Ada's old favourite colour was red", 0.9)
    clock.now = start
    assert await memory.retain("throttled", "assistant", retention) == 2
    clock.now = start - 7200
    await memory.remember("throttled", "assistant", TEAL, 0.9)
    clock.now = start + RETAIN_INTERVAL_S / 2
    assert await memory.retain("throttled", "assistant", retention) == 0  # within the interval
    assert await memory.retain("throttled", "other-agent", retention) == 1  # its own interval
    facts = await memory.recall("throttled", "assistant", "Ada's favourite colour", 5, 500)
    assert [f["fact"] for f in facts] == [TEAL]
    clock.now = start + RETAIN_INTERVAL_S
    assert await memory.retain("throttled", "assistant", retention) == 1
    assert await memory.recall("throttled", "assistant", "Ada's favourite colour", 5, 500) == []
