"""What a tool is to the agent loop: a name, a description, a JSON Schema of its arguments,
its policies (timeout, caching, replay) and an async `call`. Tools know nothing of gRPC."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from taskloom.agents.catalog.spec import ToolDecl
from taskloom.agents.providers.base import Message

ANY_OBJECT: Mapping[str, Any] = {"type": "object"}


class ToolError(Exception):
    """A tool failed in a way the model should hear about: the message goes back to it as
    the tool's result (so it may correct itself), and the task goes on."""


@dataclass(frozen=True)
class ToolPolicy:
    """How the registry runs a tool."""

    timeout_s: float | None = None  # None: the agent's tool_timeout_s
    cacheable: bool = False  # successes are cached through the cache service
    cache_ttl_s: float = 0.0  # 0: the `tool` namespace's default TTL
    replayable: bool = True  # a recorded result may stand in for a new call after a crash


def declared_policy(decl: ToolDecl, default_timeout_s: float | None = None) -> ToolPolicy:
    """The policy an agent file declares for a tool; `default_timeout_s` stands in when the
    file gives no timeout (None: the agent's tool_timeout_s)."""
    return ToolPolicy(
        timeout_s=decl.timeout_s or default_timeout_s,
        cacheable=decl.cacheable,
        cache_ttl_s=decl.cache_ttl_s,
        replayable=decl.replayable,
    )


@dataclass(frozen=True)
class TaskInfo:
    """The task a tool runs for."""

    task_id: str
    agent: str
    tenant: str = "default"
    labels: Mapping[str, str] = field(default_factory=dict)
    attempt: int = 1


SuspendCredit = Callable[[], AbstractAsyncContextManager[None]]


@dataclass
class ToolContext:
    """Handed to every tool call."""

    task: TaskInfo
    # The conversation so far (read-only by convention): handoffs pass it on.
    messages: Sequence[Message] = ()
    # Entered while the tool waits on other tasks: the worker gives its credit back.
    suspend_credit: SuspendCredit | None = None
    tool_call_id: str = ""


@dataclass(frozen=True)
class Handoff:
    """Returned by a tool that hands the task to another agent: the loop stops and this
    output becomes the task's result."""

    output: Mapping[str, Any]
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Tool(Protocol):
    name: str
    description: str
    parameters: Mapping[str, Any]
    policy: ToolPolicy

    async def call(self, arguments: dict[str, Any], context: ToolContext) -> Any:
        """Run the tool; return a JSON-serialisable value (or a `Handoff`), raise
        `ToolError` for failures the model should see."""
        ...


@dataclass
class FunctionTool:
    """A tool backed by an async callable taking (arguments, context)."""

    name: str
    description: str
    parameters: Mapping[str, Any]
    run: Callable[[dict[str, Any], ToolContext], Awaitable[Any]]
    policy: ToolPolicy = field(default_factory=ToolPolicy)

    async def call(self, arguments: dict[str, Any], context: ToolContext) -> Any:
        return await self.run(arguments, context)
