"""The worker's embeddings: the SDK's embedders (`taskloom.sdk.embeddings`) with each
text's vector cached in the cache service (namespace `embed`)."""

from __future__ import annotations

from taskloom.agents.cache_client import CacheClient
from taskloom.agents.embeddings.cached import EMBED_NAMESPACE, CachedEmbedder
from taskloom.sdk.embeddings import Embedder, build_embedder

__all__ = ["EMBED_NAMESPACE", "CachedEmbedder", "cached_embedder"]


def cached_embedder(
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
    inner = build_embedder(
        kind, dimension=dimension, base_url=base_url, model=model, api_key=api_key
    )
    return CachedEmbedder(inner, cache, cache_ttl_s) if cache is not None else inner
