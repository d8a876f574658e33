"""The semantic cache: after the exact LLM cache misses, an agent that enables it
(`semantic_cache: {enabled: true, threshold: 0.95}`) embeds the task's question and looks
for an earlier question whose embedding is at least `threshold` similar (cosine) with
the same agent, provider, model, parameters, tools, system prompt and tenant; its answer
is reused. Only first turns are looked up and stored (a system prompt and one user
message): later turns depend on tool results that a similar question would not share.

Entries are points of the tenant's `s` family in the vector service, one collection per
tenant, filtered by a scope hash of everything that must be equal."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import structlog

from taskloom.agents.catalog import AgentSpec
from taskloom.agents.providers.base import GenerationParams, Message, ToolDefinition
from taskloom.agents.telemetry import Telemetry
from taskloom.sdk.collections import CollectionError, Collections
from taskloom.sdk.embeddings import EmbeddingError

log = structlog.get_logger(__name__)

COLLECTION = "llm"
# A best match this much under the threshold counts as a near miss (a metric only).
NEAR_MISS_MARGIN = 0.05


@dataclass(frozen=True)
class SemanticHit:
    text: str
    tool_calls: list[dict[str, Any]]
    similarity: float


def question(messages: Sequence[Message]) -> str | None:
    """The question of a first turn (system prompts, then one user message); None for
    any other conversation."""
    rest = [m for m in messages if m["role"] != "system"]
    if len(rest) != 1 or rest[0]["role"] != "user":
        return None
    return rest[0]["content"]


def scope(
    spec: AgentSpec,
    tenant: str,
    messages: Sequence[Message],
    params: GenerationParams,
    tools: Sequence[ToolDefinition],
) -> str:
    """A hash of everything two requests must share for one's answer to serve the other."""
    payload = {
        "agent": spec.name,
        "provider": spec.provider,
        "model": spec.model,
        "tenant": tenant,
        "system": [m["content"] for m in messages if m["role"] == "system"],
        "params": [params.temperature, params.max_tokens, params.options],
        "tools": [[t.name, t.description, t.parameters] for t in tools],
    }
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


class SemanticCache:
    def __init__(self, store: Collections, telemetry: Telemetry) -> None:
        self._store = store
        self._telemetry = telemetry
        self._created: set[str] = set()

    async def lookup(
        self, tenant: str, scope_id: str, text: str, threshold: float
    ) -> tuple[SemanticHit | None, list[float] | None]:
        """The cached answer of a similar enough question, and the question's vector (to
        store the answer under it on a miss); failures are misses, logged."""
        try:
            vector = (await self._store.embedder.embed([text]))[0]
        except EmbeddingError as err:
            log.warning("semantic cache lookup failed", error=str(err))
            self._telemetry.semantic_cache("miss")
            return None, None
        try:
            hits = await self._store.search(
                tenant, COLLECTION, vector=vector, top_k=1, where={"scope": scope_id}
            )
        except CollectionError as err:
            if err.reason != "COLLECTION_NOT_FOUND":  # not found: nothing cached yet
                log.warning("semantic cache lookup failed", error=str(err))
            self._telemetry.semantic_cache("miss")
            return None, vector
        best = hits[0] if hits else None
        if best is not None and best.score >= threshold:
            self._telemetry.semantic_cache("hit")
            answer = orjson.loads(str(best.metadata.get("answer", "{}")))
            return SemanticHit(
                answer.get("text", ""), answer.get("tool_calls", []), best.score
            ), vector
        near = best is not None and best.score >= threshold - NEAR_MISS_MARGIN
        self._telemetry.semantic_cache("near_miss" if near else "miss")
        return None, vector

    async def store(
        self,
        tenant: str,
        scope_id: str,
        vector: list[float],
        text: str,
        tool_calls: list[dict[str, Any]],
    ) -> None:
        answer = orjson.dumps({"text": text, "tool_calls": tool_calls}).decode()
        try:
            if tenant not in self._created:
                try:
                    await self._store.create(tenant, COLLECTION)
                except CollectionError as err:
                    if err.reason != "COLLECTION_EXISTS":
                        raise
                self._created.add(tenant)
            await self._store.put(
                tenant,
                COLLECTION,
                [(uuid.uuid4().hex, vector, {"scope": scope_id, "answer": answer})],
            )
        except CollectionError as err:
            log.warning("semantic cache store failed", error=str(err))

    async def aclose(self) -> None:
        await self._store.aclose()
