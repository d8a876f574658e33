"""What an embedder is to Taskloom: texts in, one unit-length vector per text out, in
batches, with a fixed dimension and a name that says which vectors it makes (the cache
key and the vector collections depend on it)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol


class EmbeddingError(Exception):
    """The embedder could not embed; `retryable` says whether a retry may help."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class Embedder(Protocol):
    # Identifies the vectors: two embedders with the same name give the same vector.
    name: str
    dimension: int
    # Texts sent in one request at most; longer lists are split.
    max_batch: int

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in order; each of `dimension` floats and unit length."""
        ...

    async def aclose(self) -> None: ...


def normalized(vector: Sequence[float]) -> list[float]:
    """The vector scaled to unit length (cosine similarity becomes a dot product); the
    zero vector stays zero."""
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector] if norm > 0 else [0.0] * len(vector)


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity of two vectors of the same dimension."""
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norms = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norms if norms > 0 else 0.0
