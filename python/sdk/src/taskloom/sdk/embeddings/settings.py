"""The embedding settings, one definition for every service that embeds (the gateway
embeds documents, the worker embeds queries and memories: they must name the same
embedder, or searches compare vectors of different models)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator

from taskloom.sdk.embeddings import MINILM_DIMENSION, Embedder, build_embedder


class EmbeddingSettings(BaseModel):
    embedder: Literal["hashing", "openai", "minilm"] = Field(
        default="hashing",
        description="embeddings for memory and retrieval: hashing (deterministic, no model; "
        "matches shared words only), openai (an OpenAI-compatible /v1/embeddings API) or "
        "minilm (the local all-MiniLM-L6-v2 of the local-embeddings extra, offline)",
    )
    embeddings_dimension: int = Field(
        default=256,
        ge=1,
        le=8192,
        description="dimension of the embedder's vectors "
        f"(minilm: {MINILM_DIMENSION}, its default)",
    )
    embeddings_base_url: str = Field(
        default="", description="base URL of the OpenAI-compatible embeddings API (…/v1)"
    )
    embeddings_model: str = Field(default="", description="model of the embeddings API")
    embeddings_api_key: SecretStr = Field(
        default=SecretStr(""),
        description="API key of the embeddings API, read from the environment only",
    )

    @model_validator(mode="after")
    def _embeddings_api_named(self) -> EmbeddingSettings:
        if self.embedder == "openai" and not (self.embeddings_base_url and self.embeddings_model):
            raise ValueError("embedder openai needs embeddings_base_url and embeddings_model")
        if self.embedder == "minilm":
            if "embeddings_dimension" not in self.model_fields_set:
                self.embeddings_dimension = MINILM_DIMENSION
            elif self.embeddings_dimension != MINILM_DIMENSION:
                raise ValueError(
                    f"embedder minilm makes {MINILM_DIMENSION}-dimension vectors; "
                    f"embeddings_dimension is {self.embeddings_dimension}"
                )
        return self

    def build_embedder(self) -> Embedder:
        return build_embedder(
            self.embedder,
            dimension=self.embeddings_dimension,
            base_url=self.embeddings_base_url,
            model=self.embeddings_model,
            api_key=self.embeddings_api_key.get_secret_value(),
        )
