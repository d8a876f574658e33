"""Embeddings behind one interface (`Embedder`): a deterministic hashing embedder for
tests and model-free runs, and a client of any OpenAI-compatible `/v1/embeddings` API;
either may be cached through the cache service (namespace `embed`)."""

from __future__ import annotations

from taskloom.agents.cache_client import CacheClient
from taskloom.agents.embeddings.base import Embedder, EmbeddingError, cosine, normalized
from taskloom.agents.embeddings.cached import EMBED_NAMESPACE, CachedEmbedder
from taskloom.agents.embeddings.hashing import HashingEmbedder
from taskloom.agents.embeddings.openai import OpenAIEmbedder

__all__ = [
    "EMBED_NAMESPACE",
    "CachedEmbedder",
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
    kind: str,
    *,
    dimension: int,
    base_url: str = "",
    model: str = "",
    api_key: str = "",
    cache: CacheClient | None = None,
    cache_ttl_s: float = 0.0,
) -> Embedder:
    """The embedder the worker's settings name, cached when a cache is configured."""
    inner: Embedder
    if kind == "hashing":
        inner = HashingEmbedder(dimension)
    elif kind == "openai":
        if not base_url or not model:
            raise ValueError("the openai embedder needs embeddings_base_url and embeddings_model")
        inner = OpenAIEmbedder(base_url, model, dimension, api_key=api_key)
    else:
        raise ValueError(f"embedder must be one of {', '.join(EMBEDDERS)}, got {kind!r}")
    return CachedEmbedder(inner, cache, cache_ttl_s) if cache is not None else inner
