"""An embedder in front of another, caching each text's vector in the cache service
(namespace `embed`, keyed by the embedder's name and the text): only the texts missing
from the cache are sent, in one batch."""

from __future__ import annotations

import asyncio
import hashlib
from array import array
from collections.abc import Sequence

from taskloom.agents.cache_client import CacheClient
from taskloom.sdk.embeddings import Embedder

EMBED_NAMESPACE = "embed"


class CachedEmbedder:
    def __init__(self, inner: Embedder, cache: CacheClient, ttl_s: float = 0.0) -> None:
        self.inner = inner
        self.name = inner.name
        self.dimension = inner.dimension
        self.max_batch = inner.max_batch
        self._cache = cache
        self._ttl_s = ttl_s
        self.hits = 0
        self.misses = 0

    def key(self, text: str) -> str:
        return hashlib.sha256(f"{self.name}\0{text}".encode()).hexdigest()

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        keys = [self.key(text) for text in texts]
        found = await asyncio.gather(*(self._cache.get(EMBED_NAMESPACE, k) for k in keys))
        vectors: list[list[float] | None] = [self._decode(raw) for raw in found]
        missing = [i for i, v in enumerate(vectors) if v is None]
        self.hits += len(texts) - len(missing)
        self.misses += len(missing)
        if missing:
            fresh = await self.inner.embed([texts[i] for i in missing])
            for i, vector in zip(missing, fresh, strict=True):
                vectors[i] = vector
            await asyncio.gather(
                *(
                    self._cache.set(EMBED_NAMESPACE, keys[i], array("f", v).tobytes(), self._ttl_s)
                    for i, v in zip(missing, fresh, strict=True)
                )
            )
        return [v for v in vectors if v is not None]

    def _decode(self, raw: bytes | None) -> list[float] | None:
        if raw is None or len(raw) != 4 * self.dimension:
            return None  # a miss, or an entry of another shape: embed again
        return array("f", raw).tolist()

    async def aclose(self) -> None:
        await self.inner.aclose()
