"""Client of an OpenAI-compatible `/v1/embeddings` API (OpenAI, vLLM, Ollama, llama.cpp
server, text-embeddings-inference): one POST per batch, vectors checked for count and
dimension, errors sorted into retryable (429, 5xx, network) and not."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from taskloom.sdk.embeddings.base import EmbeddingError, normalized


class OpenAIEmbedder:
    def __init__(
        self,
        base_url: str,
        model: str,
        dimension: int,
        *,
        api_key: str = "",
        timeout_s: float = 30.0,
        max_batch: int = 256,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        if dimension < 1:
            raise ValueError("dimension must be at least 1")
        self.name = f"openai:{model}:{dimension}"
        self.model = model
        self.dimension = dimension
        self.max_batch = max_batch
        self._url = base_url.rstrip("/") + "/embeddings"
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._own_client = client is None
        self._client = client or httpx.AsyncClient(timeout=timeout_s)
        self._headers = headers

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.max_batch):
            vectors += await self._batch(texts[start : start + self.max_batch])
        return vectors

    async def _batch(self, texts: Sequence[str]) -> list[list[float]]:
        body = {"model": self.model, "input": list(texts), "encoding_format": "float"}
        try:
            resp = await self._client.post(self._url, json=body, headers=self._headers)
        except httpx.HTTPError as err:
            raise EmbeddingError(f"embeddings API unreachable: {err}", retryable=True) from err
        if resp.status_code != 200:
            retryable = resp.status_code == 429 or resp.status_code >= 500
            raise EmbeddingError(
                f"embeddings API answered {resp.status_code}: {resp.text[:200]}",
                retryable=retryable,
            )
        try:
            data: list[dict[str, Any]] = sorted(resp.json()["data"], key=lambda d: d["index"])
            vectors = [[float(x) for x in item["embedding"]] for item in data]
        except (ValueError, KeyError, TypeError) as err:
            raise EmbeddingError(
                f"embeddings API answered a malformed body: {err}", retryable=False
            ) from err
        if len(vectors) != len(texts):
            raise EmbeddingError(
                f"embeddings API returned {len(vectors)} vectors for {len(texts)} texts",
                retryable=False,
            )
        for vector in vectors:
            if len(vector) != self.dimension:
                raise EmbeddingError(
                    f"embeddings API returned a vector of dimension {len(vector)}, "
                    f"expected {self.dimension} (embeddings_dimension)",
                    retryable=False,
                )
        return [normalized(v) for v in vectors]

    async def aclose(self) -> None:
        if self._own_client:
            await self._client.aclose()
