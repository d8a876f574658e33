"""Embedders: the hashing embedder's determinism and shape, the OpenAI-compatible client
against a real local HTTP server speaking `/v1/embeddings`, and the `embed` cache through
a gRPC cache server."""

from __future__ import annotations

import math

import pytest

from taskloom.agents.cache_client import CacheClient
from taskloom.agents.embeddings import EMBED_NAMESPACE, CachedEmbedder, cached_embedder
from taskloom.sdk.embeddings import (
    MINILM_DIMENSION,
    EmbeddingError,
    HashingEmbedder,
    OpenAIEmbedder,
    build_embedder,
    cosine,
    local_minilm,
)
from taskloom.sdk.embeddings.settings import EmbeddingSettings

pytestmark = pytest.mark.asyncio


async def test_hashing_vectors_are_deterministic_unit_length_and_share_words() -> None:
    embedder = HashingEmbedder(64)
    a, b, c, again = await embedder.embed(
        [
            "the cat sat on the mat",
            "the cat sat on a mat",
            "quarterly revenue grew",
            "the cat sat on the mat",
        ]
    )
    assert a == again and len(a) == 64
    assert math.isclose(math.sqrt(sum(x * x for x in a)), 1.0)
    assert cosine(a, b) > 0.6 > cosine(a, c)


async def test_openai_client_batches_orders_and_normalises(embeddings_api) -> None:
    embeddings_api.vectors = {"x": [3.0, 4.0] + [0.0] * 6}
    embedder = OpenAIEmbedder(embeddings_api.base_url, "m1", 8, api_key="sk-e", max_batch=2)
    try:
        vectors = await embedder.embed(["x", "y", "z"])
    finally:
        await embedder.aclose()
    assert [len(r["input"]) for r in embeddings_api.requests] == [2, 1]
    assert embeddings_api.requests[0]["model"] == "m1"
    assert embeddings_api.headers[0]["authorization"] == "Bearer sk-e"
    assert vectors[0][:2] == pytest.approx([0.6, 0.8])
    assert vectors[1] == pytest.approx(HashingEmbedder(8).embed_one("y"))


async def test_openai_client_refuses_a_wrong_dimension_by_name(embeddings_api) -> None:
    embedder = OpenAIEmbedder(embeddings_api.base_url, "m1", 16)
    try:
        with pytest.raises(EmbeddingError, match="dimension 8, expected 16") as err:
            await embedder.embed(["x"])
    finally:
        await embedder.aclose()
    assert not err.value.retryable


@pytest.mark.parametrize(("status", "retryable"), [(429, True), (503, True), (400, False)])
async def test_openai_client_errors_say_whether_to_retry(embeddings_api, status, retryable) -> None:
    embeddings_api.status = status
    embedder = OpenAIEmbedder(embeddings_api.base_url, "m1", 8)
    try:
        with pytest.raises(EmbeddingError, match=str(status)) as err:
            await embedder.embed(["x"])
    finally:
        await embedder.aclose()
    assert err.value.retryable is retryable


async def test_cached_embedder_sends_only_the_missing_texts(embeddings_api, cache_server) -> None:
    fake_cache, addr = cache_server
    cache = CacheClient(addr)
    embedder = cached_embedder(
        "openai", dimension=8, base_url=embeddings_api.base_url, model="m1", cache=cache
    )
    assert isinstance(embedder, CachedEmbedder)
    try:
        first = await embedder.embed(["a b", "c d"])
        second = await embedder.embed(["c d", "e f", "a b"])
    finally:
        await embedder.aclose()
        await cache.aclose()
    assert [r["input"] for r in embeddings_api.requests] == [["a b", "c d"], ["e f"]]
    assert second[0] == pytest.approx(first[1], abs=1e-6)
    assert second[2] == pytest.approx(first[0], abs=1e-6)
    assert {ns for ns, _ in fake_cache.data} == {EMBED_NAMESPACE}
    assert (embedder.hits, embedder.misses) == (2, 3)


async def test_build_embedder_names_what_is_missing() -> None:
    with pytest.raises(ValueError, match="embeddings_base_url and embeddings_model"):
        build_embedder("openai", dimension=8)
    with pytest.raises(ValueError, match="hashing, openai"):
        build_embedder("word2vec", dimension=8)


async def test_minilm_without_its_extra_names_the_extra(monkeypatch) -> None:
    monkeypatch.setattr(local_minilm, "MODEL_PACKAGE", "taskloom_no_such_model_package")
    with pytest.raises(ValueError, match=r"taskloom-agents\[local-embeddings\]"):
        build_embedder("minilm", dimension=MINILM_DIMENSION)
    with pytest.raises(ValueError, match="dimension is 384, got 256"):
        build_embedder("minilm", dimension=256)


async def test_minilm_settings_default_to_its_dimension_and_refuse_another() -> None:
    assert EmbeddingSettings(embedder="minilm").embeddings_dimension == MINILM_DIMENSION
    assert EmbeddingSettings().embeddings_dimension == 256
    with pytest.raises(ValueError, match="minilm makes 384-dimension vectors"):
        EmbeddingSettings(embedder="minilm", embeddings_dimension=256)
