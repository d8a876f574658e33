"""A deterministic embedder for tests and for running without a model: each word (and
each pair of neighbouring words) is hashed into one of `dimension` buckets with a sign
(the "hashing trick"), and the counts are normalised. Texts that share words are close;
paraphrases with other words are not, so semantic tests need a real model."""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Sequence

from taskloom.sdk.embeddings.base import normalized

_WORD = re.compile(r"\w+")
DEFAULT_DIMENSION = 256


class HashingEmbedder:
    max_batch = 1024

    def __init__(self, dimension: int = DEFAULT_DIMENSION) -> None:
        if dimension < 1:
            raise ValueError("dimension must be at least 1")
        self.dimension = dimension
        self.name = f"hashing-{dimension}"

    def embed_one(self, text: str) -> list[float]:
        words = _WORD.findall(text.lower())
        features = words + [f"{a} {b}" for a, b in itertools.pairwise(words)]
        vector = [0.0] * self.dimension
        for feature in features:
            digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
            value = int.from_bytes(digest, "little")
            vector[value % self.dimension] += 1.0 if value >> 63 else -1.0
        return normalized(vector)

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [self.embed_one(text) for text in texts]

    async def aclose(self) -> None:
        return None
