"""Session memory in the agent loop: before a task of a session runs, the session's
earlier turns go between the system prompt and the task's new messages, the oldest
dropped first until the prompt fits the agent's context window (counted with the offline
tokenizer, leaving room for the answer); after the task answers, its new messages and
the answer are appended to the session."""

from __future__ import annotations

from collections.abc import Sequence

from taskloom.agents.catalog import AgentSpec
from taskloom.agents.providers.base import Message, ToolDefinition
from taskloom.sdk.sessions import RedisSessions


class SessionsUnavailable(Exception):
    """A task names a session but this worker keeps none."""


def fit_history(
    spec: AgentSpec,
    history: Sequence[Message],
    messages: Sequence[Message],
    tools: Sequence[ToolDefinition] = (),
) -> list[Message]:
    """`messages` (system prompt first, if any) with as much of `history` as fits in the
    agent's context window minus its `max_tokens`; whole turns are dropped, oldest first,
    so the kept history starts with a user message. The new messages are never dropped."""
    from taskloom.agents.tokenizer import estimate_prompt_tokens  # tiktoken: when first used

    system = [m for m in messages if m["role"] == "system"][:1]
    new = [m for m in messages if m not in system]
    budget = spec.context_window - spec.max_tokens
    kept = list(history)
    while kept and estimate_prompt_tokens([*system, *kept, *new], tools) > budget:
        kept.pop(0)
        while kept and kept[0]["role"] != "user":
            kept.pop(0)
    return [*system, *kept, *new]


class SessionMemory:
    def __init__(self, store: RedisSessions | None) -> None:
        self.store = store

    async def prepare(
        self,
        spec: AgentSpec,
        tenant: str,
        session_id: str,
        messages: Sequence[Message],
        tools: Sequence[ToolDefinition] = (),
    ) -> list[Message]:
        """The prompt of a task of `session_id`: its messages with the session's history."""
        if self.store is None:
            raise SessionsUnavailable(
                "session_id needs session memory, which this worker does not keep: "
                "set sessions_redis_url"
            )
        session = await self.store.load(tenant, session_id)
        history: list[Message] = [
            {"role": m["role"], "content": m["content"]}
            for m in (session.messages if session is not None else ())
        ]
        return fit_history(spec, history, messages, tools)

    async def record(
        self, tenant: str, session_id: str, new: Sequence[Message], answer: str
    ) -> None:
        """Appends the task's new (non-system) messages and its answer."""
        assert self.store is not None
        turn = [{"role": m["role"], "content": m["content"]} for m in new if m["role"] != "system"]
        turn.append({"role": "assistant", "content": answer})
        await self.store.append(tenant, session_id, turn)
