"""Embeddings behind one interface (`Embedder`): a deterministic hashing embedder for
tests and model-free runs, a client of any OpenAI-compatible `/v1/embeddings` API, and the
local MiniLM model of the optional `local-embeddings` extra.
In the SDK because the gateway (documents) and the agent worker (queries, memory) must
embed alike; the worker adds a cache in front (`taskloom.agents.embeddings`)."""

from __future__ import annotations

from taskloom.sdk.embeddings.base import Embedder, EmbeddingError, cosine, normalized
from taskloom.sdk.embeddings.hashing import HashingEmbedder
from taskloom.sdk.embeddings.local_minilm import MINILM_DIMENSION, LocalMiniLMEmbedder
from taskloom.sdk.embeddings.openai import OpenAIEmbedder

__all__ = [
    "EMBEDDERS",
    "MINILM_DIMENSION",
    "Embedder",
    "EmbeddingError",
    "HashingEmbedder",
    "LocalMiniLMEmbedder",
    "OpenAIEmbedder",
    "build_embedder",
    "cosine",
    "normalized",
]

EMBEDDERS = ("hashing", "openai", "minilm")


def build_embedder(
    kind: str, *, dimension: int, base_url: str = "", model: str = "", api_key: str = ""
) -> Embedder:
    """The embedder a service's settings name (`embedder`, `embeddings_*`)."""
    if kind == "hashing":
        return HashingEmbedder(dimension)
    if kind == "openai":
        if not base_url or not model:
            raise ValueError("the openai embedder needs embeddings_base_url and embeddings_model")
        return OpenAIEmbedder(base_url, model, dimension, api_key=api_key)
    if kind == "minilm":
        if dimension != MINILM_DIMENSION:
            raise ValueError(
                f"the minilm embedder's dimension is {MINILM_DIMENSION}, got {dimension}"
            )
        return LocalMiniLMEmbedder()
    raise ValueError(f"embedder must be one of {', '.join(EMBEDDERS)}, got {kind!r}")
