"""The `rag` tool: searches one of the tenant's document collections (filled through
`POST /v1/collections/{name}/documents`) and gives the model the nearest chunks. Results
are cached in the cache service (namespace `rag`) for the tool's `cache_ttl_s`."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from taskloom.agents.cache_client import CacheClient
from taskloom.agents.catalog.spec import AgentSpec, RagOptions, ToolDecl
from taskloom.agents.tools.base import FunctionTool, ToolContext, ToolError, declared_policy
from taskloom.sdk.collections import NAME_RULE, CollectionError, Collections
from taskloom.sdk.embeddings import EmbeddingError

RAG_NAMESPACE = "rag"


def _parameters(options: RagOptions) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "query": {"type": "string", "minLength": 1, "maxLength": 4000},
        "top_k": {"type": "integer", "minimum": 1, "maximum": 100, "default": options.top_k},
    }
    required = ["query"]
    if not options.collection:
        properties["collection"] = {"type": "string", "description": NAME_RULE}
        required.append("collection")
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


class Rag:
    def __init__(
        self, options: RagOptions, collections: Collections, cache: CacheClient | None
    ) -> None:
        self._options = options
        self._collections = collections
        self._cache = cache

    async def __call__(self, arguments: dict[str, Any], context: ToolContext) -> dict[str, Any]:
        collection = self._options.collection or arguments["collection"]
        query, top_k = arguments["query"], int(arguments.get("top_k", self._options.top_k))
        tenant = context.task.tenant
        key = hashlib.sha256(
            orjson.dumps([tenant, collection, query, top_k, self._collections.embedder.name])
        ).hexdigest()
        use_cache = self._cache is not None and self._options.cache_ttl_s > 0
        if use_cache and self._cache is not None:
            cached = await self._cache.get(RAG_NAMESPACE, key)
            if cached is not None:
                result: dict[str, Any] = orjson.loads(cached)
                return result
        try:
            hits = await self._collections.search(tenant, collection, query=query, top_k=top_k)
        except CollectionError as err:
            raise ToolError(f"{err.reason}: {err.message}") from None
        except EmbeddingError as err:
            raise ToolError(f"the query could not be embedded: {err}") from None
        result = {
            "collection": collection,
            "results": [
                {"text": h.text, "score": round(h.score, 4), "document_id": h.document_id}
                for h in hits
            ],
        }
        if use_cache and self._cache is not None:
            await self._cache.set(
                RAG_NAMESPACE, key, orjson.dumps(result), self._options.cache_ttl_s
            )
        return result


def rag_tool(collections: Collections, cache: CacheClient | None) -> Any:
    def factory(decl: ToolDecl, spec: AgentSpec) -> FunctionTool:
        options: RagOptions = decl.builtin_options()
        where = f"the {options.collection!r} collection" if options.collection else "a collection"
        return FunctionTool(
            name=decl.name,
            description=decl.description
            or f"Search {where} of documents; returns the passages nearest to the query.",
            parameters=_parameters(options),
            run=Rag(options, collections, cache),
            policy=declared_policy(decl),
        )

    return factory
