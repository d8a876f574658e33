"""The semantic cache on the real vector service, with an OpenAI-compatible
`/v1/embeddings` fake server returning controlled vectors (the hashing embedder cannot
tell a paraphrase from another question; a real model would need torch in CI): a
paraphrase is answered from the cache, a different question and a near miss are not, and
another tenant never gets the answer."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from taskloom.agents.catalog import Catalog, ProviderKind, load_catalog
from taskloom.agents.catalog.spec import SemanticCacheOptions
from taskloom.agents.providers.openai import OpenAIProvider
from taskloom.agents.runtime import AgentRuntime
from taskloom.agents.semantic_cache import SemanticCache, question
from taskloom.agents.tools.base import TaskInfo
from taskloom.sdk.collections import Collections
from taskloom.sdk.embeddings import OpenAIEmbedder

pytestmark = pytest.mark.asyncio

DIM = 8
QUESTION = "What is the capital of France?"
PARAPHRASE = "Tell me France's capital city."
NEAR = "What is the largest city of France?"
OTHER = "How tall is Mount Everest?"


def unit(angle: float, axis: int = 1) -> list[float]:
    """A unit vector at `angle` radians from the first axis, towards `axis`."""
    v = [0.0] * DIM
    v[0], v[axis] = math.cos(angle), math.sin(angle)
    return v


@pytest_asyncio.fixture
async def runtime(vector_addr, embeddings_api, fake_openai, telemetry) -> AsyncIterator[Any]:
    embeddings_api.dimension = DIM
    embeddings_api.vectors = {
        QUESTION: unit(0.0),
        PARAPHRASE: unit(math.acos(0.98)),  # cosine 0.98 with the question
        NEAR: unit(math.acos(0.93), axis=2),  # 0.93: under 0.95, within the near-miss margin
        OTHER: unit(math.pi / 2, axis=3),  # orthogonal
    }
    answers = iter(["Paris.", "Still Paris.", "8,849 m.", "Paris, again."])
    fake_openai.respond = lambda body: {"text": next(answers)}
    spec = load_catalog()["assistant"].model_copy(
        update={
            "provider": ProviderKind.OPENAI,
            "cache": False,
            "semantic_cache": SemanticCacheOptions(enabled=True),
        }
    )
    embedder = OpenAIEmbedder(embeddings_api.base_url, "e", DIM)
    store = Collections(vector_addr, embedder, kind="s")
    provider = OpenAIProvider(fake_openai.base_url)
    runtime = AgentRuntime(
        Catalog([spec]), {"openai": provider}, telemetry, semantic=SemanticCache(store, telemetry)
    )
    yield runtime
    await provider.aclose()
    await store.aclose()
    await embedder.aclose()


async def ask(runtime: AgentRuntime, prompt: str, tenant: str = "acme") -> dict[str, Any]:
    async def ignore(event: object) -> None:
        return None

    result = await runtime.run("assistant", prompt, ignore, TaskInfo("t", "assistant", tenant))
    return result.output


def counts(telemetry: Any) -> dict[str, float]:
    registry = telemetry.registry
    return {
        r: registry.get_sample_value("taskloom_agent_semantic_cache_total", {"result": r}) or 0.0
        for r in ("hit", "near_miss", "miss")
    }


async def test_a_paraphrase_hits_and_a_different_question_misses(
    runtime, fake_openai, telemetry
) -> None:
    assert (await ask(runtime, QUESTION))["text"] == "Paris."
    paraphrased = await ask(runtime, PARAPHRASE)
    assert paraphrased["text"] == "Paris." and paraphrased["cached"] is True
    assert len(fake_openai.requests) == 1  # the paraphrase never reached the model
    assert (await ask(runtime, NEAR))["text"] == "Still Paris."
    assert (await ask(runtime, OTHER))["text"] == "8,849 m."
    assert counts(telemetry) == {"hit": 1, "near_miss": 1, "miss": 2}
    # Another tenant asking the very question is not answered from acme's cache.
    assert (await ask(runtime, QUESTION, tenant="globex"))["text"] == "Paris, again."
    assert len(fake_openai.requests) == 4


async def test_only_first_turns_are_looked_up() -> None:
    assert question([{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]) == "q"
    later = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "a"},
        {"role": "user", "content": "q2"},
    ]
    assert question(later) is None  # type: ignore[arg-type]
