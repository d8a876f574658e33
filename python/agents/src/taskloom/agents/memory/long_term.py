"""Long-term memory of an agent in a tenant: facts the agent chose to keep (`remember`
tool, with an importance from 0 to 1) in the vector service, recalled by similarity
(`memory_search` tool) within a token budget, dropped by the agent's retention (age,
importance). Each (tenant, agent) has its own memory collection, in the `m` family of the
tenant's namespace: no tenant or agent reads another's, and users' document collections
never list them."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

from taskloom.agents.catalog.spec import AgentSpec, MemoryOptions, MemorySearchOptions, ToolDecl
from taskloom.agents.tools.base import FunctionTool, ToolContext, ToolError, declared_policy
from taskloom.sdk.collections import CollectionError, Collections
from taskloom.sdk.embeddings import EmbeddingError

MAX_FACT = 2000
# Retention deletes by a payload filter, which the vector service answers by scanning every
# point of the collection: it runs at most this often per (tenant, agent), not on every
# remember, search and recall. A fact may so outlive its max_age_s by up to this long.
RETAIN_INTERVAL_S = 60.0

REMEMBER = {
    "type": "object",
    "properties": {
        "fact": {"type": "string", "minLength": 1, "maxLength": MAX_FACT},
        "importance": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.5},
    },
    "required": ["fact"],
    "additionalProperties": False,
}


def memory_name(agent: str) -> str:
    """The agent's memory collection within its tenant (agent names may hold dots)."""
    return hashlib.sha256(agent.encode()).hexdigest()[:24]


def within_budget(facts: list[dict[str, Any]], budget: int) -> list[dict[str, Any]]:
    """The leading facts whose texts together take at most `budget` tokens."""
    from taskloom.agents.tokenizer import count_text  # tiktoken: imported when first used

    kept, used = [], 0
    for fact in facts:
        used += count_text(fact["fact"])
        if used > budget:
            break
        kept.append(fact)
    return kept


class LongTermMemory:
    def __init__(
        self,
        memories: Collections,
        *,
        clock: Callable[[], float] = time.time,
        retain_interval_s: float = RETAIN_INTERVAL_S,
    ) -> None:
        """`clock` gives the wall time facts are stored at and aged by."""
        self.memories = memories
        self._clock = clock
        self._retain_interval_s = retain_interval_s
        self._retained_at: dict[tuple[str, str], float] = {}

    async def retain(self, tenant: str, agent: str, options: MemoryOptions) -> int:
        """Drops the facts the agent's retention no longer keeps: stored more than
        `max_age_s` ago, or less important than `min_importance`; at most once per
        RETAIN_INTERVAL_S for each (tenant, agent). Returns how many."""
        below: dict[str, float] = {}
        now = self._clock()
        if options.max_age_s:
            below["created_at"] = now - options.max_age_s
        if options.min_importance:
            below["importance"] = options.min_importance
        if not below:
            return 0
        last = self._retained_at.get((tenant, agent))
        if last is not None and now - last < self._retain_interval_s:
            return 0
        self._retained_at[(tenant, agent)] = now
        try:
            return await self.memories.delete_below(tenant, memory_name(agent), below)
        except CollectionError as err:
            if err.reason == "COLLECTION_NOT_FOUND":
                return 0  # nothing remembered yet
            raise

    async def remember(self, tenant: str, agent: str, fact: str, importance: float) -> str:
        name = memory_name(agent)
        try:
            await self.memories.create(tenant, name)
        except CollectionError as err:
            if err.reason != "COLLECTION_EXISTS":
                raise
        document_id, _ = await self.memories.add_document(
            tenant, name, fact, metadata={"importance": importance, "created_at": self._clock()}
        )
        return document_id

    async def recall(
        self, tenant: str, agent: str, query: str, top_k: int, token_budget: int
    ) -> list[dict[str, Any]]:
        try:
            hits = await self.memories.search(tenant, memory_name(agent), query=query, top_k=top_k)
        except CollectionError as err:
            if err.reason == "COLLECTION_NOT_FOUND":
                return []  # nothing remembered yet
            raise
        facts = [
            {
                "fact": h.text,
                "importance": float(h.metadata.get("importance", 0.5)),
                "similarity": round(h.score, 4),
            }
            for h in hits
        ]
        return within_budget(facts, token_budget)


def remember_tool(memory: LongTermMemory) -> Any:
    def factory(decl: ToolDecl, spec: AgentSpec) -> FunctionTool:
        retention = spec.memory

        async def run(arguments: dict[str, Any], context: ToolContext) -> dict[str, Any]:
            task = context.task
            importance = float(arguments.get("importance", 0.5))
            if importance < retention.min_importance:
                return {"remembered": None, "dropped": "importance under memory.min_importance"}
            try:
                await memory.retain(task.tenant, task.agent, retention)
                fact_id = await memory.remember(
                    task.tenant, task.agent, arguments["fact"], importance
                )
            except (CollectionError, EmbeddingError) as err:
                raise ToolError(f"could not remember: {err}") from None
            return {"remembered": fact_id}

        return FunctionTool(
            name=decl.name,
            description=decl.description
            or "Keep a fact for later tasks (about the user, a decision, a result), with its "
            "importance from 0 to 1.",
            parameters=REMEMBER,
            run=run,
            # Storing twice would keep the fact twice: a recorded result stands in.
            policy=declared_policy(decl),
        )

    return factory


def memory_search_tool(memory: LongTermMemory) -> Any:
    def factory(decl: ToolDecl, spec: AgentSpec) -> FunctionTool:
        options: MemorySearchOptions = decl.builtin_options()

        async def run(arguments: dict[str, Any], context: ToolContext) -> dict[str, Any]:
            task = context.task
            try:
                await memory.retain(task.tenant, task.agent, spec.memory)
                facts = await memory.recall(
                    task.tenant,
                    task.agent,
                    arguments["query"],
                    int(arguments.get("top_k", options.top_k)),
                    options.token_budget,
                )
            except (CollectionError, EmbeddingError) as err:
                raise ToolError(f"could not search memory: {err}") from None
            return {"facts": facts}

        return FunctionTool(
            name=decl.name,
            description=decl.description
            or "Recall facts kept in earlier tasks, the most similar to the query first.",
            parameters={
                "type": "object",
                "properties": {
                    "query": {"type": "string", "minLength": 1, "maxLength": 4000},
                    "top_k": {"type": "integer", "minimum": 1, "maximum": 100},
                },
                "required": ["query"],
                "additionalProperties": False,
            },
            run=run,
            policy=declared_policy(decl),
        )

    return factory
