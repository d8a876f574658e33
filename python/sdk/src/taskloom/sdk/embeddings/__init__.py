"""Embeddings behind one interface (`Embedder`): a deterministic hashing embedder for
tests and model-free runs, and a client of any OpenAI-compatible `/v1/embeddings` API.
In the SDK because the gateway (documents) and the agent worker (queries, memory) must
embed alike; the worker adds a cache in front (`taskloom.agents.embeddings`)."""

from __future__ import annotations

from taskloom.sdk.embeddings.base import Embedder, EmbeddingError, cosine, normalized
from taskloom.sdk.embeddings.hashing import HashingEmbedder
from taskloom.sdk.embeddings.openai import OpenAIEmbedder

__all__ = [
    "EMBEDDERS",
    "Embedder",
    "EmbeddingError",
    "HashingEmbedder",
    "OpenAIEmbedder",
    "build_embedder",
    "cosine",
    "normalized",
]

EMBEDDERS = ("hashing", "openai")


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
    raise ValueError(f"embedder must be one of {', '.join(EMBEDDERS)}, got {kind!r}")
