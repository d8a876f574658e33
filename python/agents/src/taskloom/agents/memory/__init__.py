"""Agent memory: a task's session conversation (sessions.py), an agent's long-term facts
(long_term.py: `remember`, `memory_search`; recall.py: recalled into the prompt) and
retrieval over document collections (rag.py: `rag`)."""

from __future__ import annotations

from taskloom.agents.cache_client import CacheClient
from taskloom.agents.memory.long_term import LongTermMemory, memory_search_tool, remember_tool
from taskloom.agents.memory.rag import rag_tool
from taskloom.agents.tools.registry import BuiltinFactory
from taskloom.sdk.collections import Collections


def long_term_memory(collections: Collections) -> LongTermMemory:
    """Agents' long-term memory, in the `m` family beside the document collections."""
    return LongTermMemory(Collections(collections.vector_addr, collections.embedder, kind="m"))


def memory_tools(
    collections: Collections | None, memory: LongTermMemory | None, cache: CacheClient | None
) -> dict[str, BuiltinFactory]:
    """The memory tools a worker with a vector service offers (none without one)."""
    if collections is None or memory is None:
        return {}
    return {
        "rag": rag_tool(collections, cache),
        "remember": remember_tool(memory),
        "memory_search": memory_search_tool(memory),
    }
