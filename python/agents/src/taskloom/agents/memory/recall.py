"""Automatic recall (`memory: {auto_recall: k}` in an agent): before the first LLM call the
agent's long-term memories most similar to the user's input are put into the system prompt,
so the model knows them without calling `memory_search`."""

from __future__ import annotations

from taskloom.agents.catalog.spec import AgentSpec
from taskloom.agents.memory.long_term import LongTermMemory
from taskloom.agents.providers.base import Message

SECTION_TITLE = "Relevant memories from earlier tasks (most similar first):"


def recall_query(messages: list[Message]) -> str:
    """What the memories are searched with: the task's last user message."""
    return next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")


def with_memories(messages: list[Message], facts: list[dict[str, object]]) -> list[Message]:
    """The messages with the facts as a section of the (first) system message."""
    if not facts:
        return messages
    section = "\n".join([SECTION_TITLE, *(f"- {f['fact']}" for f in facts)])
    out = [dict(m) for m in messages]
    if out and out[0]["role"] == "system":
        out[0]["content"] = f"{out[0]['content']}\n\n{section}"
    else:
        out.insert(0, {"role": "system", "content": section})
    return out  # type: ignore[return-value]


async def recall_into_prompt(
    memory: LongTermMemory, spec: AgentSpec, tenant: str, messages: list[Message]
) -> list[Message]:
    options = spec.memory
    query = recall_query(messages)
    if options.auto_recall == 0 or not query.strip():
        return messages
    await memory.retain(tenant, spec.name, options)
    facts = await memory.recall(tenant, spec.name, query, options.auto_recall, options.token_budget)
    return with_memories(messages, [f for f in facts if f["similarity"] >= options.min_score])
