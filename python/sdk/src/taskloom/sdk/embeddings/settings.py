"""The embedding settings, one definition for every service that embeds (the gateway
embeds documents, the worker embeds queries and memories: they must name the same
embedder, or searches compare vectors of different models)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator

from taskloom.sdk.embeddings import Embedder, build_embedder


class EmbeddingSettings(BaseModel):
    embedder: Literal["hashing", "openai"] = Field(
        default="hashing",
        description="embeddings for memory and retrieval: hashing (deterministic, no model; "
        "matches shared words only) or openai (an OpenAI-compatible /v1/embeddings API)",
    )
    embeddings_dimension: int = Field(
        default=256, ge=1, le=8192, description="dimension of the embedder's vectors"
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
        return self

    def build_embedder(self) -> Embedder:
        return build_embedder(
            self.embedder,
            dimension=self.embeddings_dimension,
            base_url=self.embeddings_base_url,
            model=self.embeddings_model,
            api_key=self.embeddings_api_key.get_secret_value(),
        )
