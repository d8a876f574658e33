"""The tool registry: resolves an agent's declared tools (built-ins, Python functions,
entry points, MCP servers) into one toolset, and runs the tool calls of an LLM turn.

A call's arguments are parsed and validated against the tool's JSON Schema before it
runs; every failure (unknown tool, malformed JSON, invalid arguments, a timeout, an
exception in the tool) becomes a tool error that goes back to the model, never a crash.
Independent calls of one turn run concurrently, bounded. Successes of cacheable tools
are cached through the cache service (namespace `tool`, key over tool name, canonical
arguments and tenant).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import orjson
import structlog
from opentelemetry.trace import Status, StatusCode

from taskloom.agents.cache_client import CacheClient
from taskloom.agents.catalog.spec import MCP_SEPARATOR, AgentSpec, McpServerDecl, ToolDecl
from taskloom.agents.providers.base import ToolCall, ToolDefinition
from taskloom.agents.tools.base import (
    ANY_OBJECT,
    FunctionTool,
    Handoff,
    Tool,
    ToolContext,
    ToolError,
)
from taskloom.agents.tools.functions import function_tool
from taskloom.sdk import tracing

if TYPE_CHECKING:
    from jsonschema.protocols import Validator

log = structlog.get_logger(__name__)

TOOL_NAMESPACE = "tool"


class BuiltinFactory(Protocol):
    def __call__(self, decl: ToolDecl, spec: AgentSpec) -> Tool: ...


class McpTools(Protocol):
    """The worker's MCP servers (see tools/mcp_servers.py)."""

    async def tools(self, server: McpServerDecl) -> list[Tool]: ...


class ToolMetrics(Protocol):
    def tool_call(self, tool: str, outcome: str, duration_s: float) -> None: ...


@dataclass
class ToolOutcome:
    """The result of one tool call, as the loop and the model see it."""

    call: ToolCall
    content: str  # what goes back to the model in the `tool` message
    ok: bool
    value: Any = None
    cached: bool = False
    handoff: Handoff | None = None


def tool_cache_key(tool: str, arguments: Mapping[str, Any], tenant: str) -> str:
    payload = {"tool": tool, "arguments": arguments, "tenant": tenant}
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()


def describe_errors(validator: Validator, arguments: Any) -> str | None:
    """Every schema violation of `arguments`, each with its JSON path; None when valid."""
    errors = sorted(validator.iter_errors(arguments), key=lambda e: list(e.absolute_path))
    if not errors:
        return None
    return "; ".join(f"{e.json_path}: {e.message}" for e in errors[:5])


class _Entry:
    """A tool with its compiled argument validator."""

    def __init__(self, tool: Tool) -> None:
        from jsonschema.validators import validator_for  # slow to import: on first use

        self.tool = tool
        self.validator: Validator = validator_for(tool.parameters)(tool.parameters)


class AgentToolset:
    """The tools of one agent. MCP servers are started on first use."""

    def __init__(self, registry: ToolRegistry, spec: AgentSpec) -> None:
        self._registry = registry
        self.spec = spec
        self._entries: dict[str, _Entry] = {}
        self._loaded = False
        self._lock = asyncio.Lock()

    async def _load(self) -> dict[str, _Entry]:
        if self._loaded:
            return self._entries
        async with self._lock:
            if not self._loaded:
                entries: dict[str, _Entry] = {}
                for decl in self.spec.tools:
                    entries[decl.name] = _Entry(self._registry.build(decl, self.spec))
                for server in self.spec.mcp_servers:
                    for tool in await self._registry.mcp_tools(server):
                        entries[tool.name] = _Entry(tool)
                self._entries = entries
                self._loaded = True
        return self._entries

    async def definitions(self) -> list[ToolDefinition]:
        entries = await self._load()
        return [
            ToolDefinition(e.tool.name, e.tool.description, e.tool.parameters)
            for e in entries.values()
        ]

    def replayable(self, name: str) -> bool:
        """Whether a recorded result of the tool may stand in for a new call (journal).
        A name the agent lacks only ever gets the same error back: replayable too."""
        entry = self._entries.get(name)
        return entry is None or entry.tool.policy.replayable

    async def execute(self, calls: Sequence[ToolCall], context: ToolContext) -> list[ToolOutcome]:
        """Run the calls of one turn (concurrently when the agent allows it), in order."""
        entries = await self._load()
        if self.spec.parallel_tool_calls and len(calls) > 1:
            limit = asyncio.Semaphore(self._registry.max_parallel)

            async def bounded(call: ToolCall) -> ToolOutcome:
                async with limit:
                    return await self._execute_one(entries, call, context)

            return list(await asyncio.gather(*(bounded(c) for c in calls)))
        return [await self._execute_one(entries, c, context) for c in calls]

    async def _execute_one(
        self, entries: Mapping[str, _Entry], call: ToolCall, context: ToolContext
    ) -> ToolOutcome:
        started = time.monotonic()
        with tracing.span("tool.call", attributes={"taskloom.tool": call.name}) as span:
            outcome = await self._run(entries, call, context)
            if not outcome.ok:
                span.set_status(Status(StatusCode.ERROR, "the tool answered an error"))
        self._registry.metrics.tool_call(
            call.name if call.name in entries else "unknown",
            "cached" if outcome.cached else ("ok" if outcome.ok else "error"),
            time.monotonic() - started,
        )
        if not outcome.ok:
            log.info("tool error", tool=call.name, call_id=call.id, error=outcome.content)
        return outcome

    async def _run(
        self, entries: Mapping[str, _Entry], call: ToolCall, context: ToolContext
    ) -> ToolOutcome:
        entry = entries.get(call.name)
        if entry is None:
            known = ", ".join(sorted(entries)) or "none"
            return _error(call, f"unknown tool {call.name!r}; this agent's tools: {known}")
        try:
            arguments = orjson.loads(call.arguments or "{}")
        except orjson.JSONDecodeError as err:
            return _error(call, f"arguments are not valid JSON ({err}); send a JSON object")
        problems = describe_errors(entry.validator, arguments)
        if problems is not None:
            return _error(call, f"invalid arguments: {problems}")
        tool = entry.tool
        cache = self._registry.cache if tool.policy.cacheable else None
        key = tool_cache_key(tool.name, arguments, context.task.tenant) if cache else ""
        if cache is not None:
            raw = await cache.get(TOOL_NAMESPACE, key)
            if raw is not None:
                value = orjson.loads(raw)
                return ToolOutcome(call, raw.decode(), ok=True, value=value, cached=True)
        timeout_s = tool.policy.timeout_s or self.spec.tool_timeout_s
        try:
            async with asyncio.timeout(timeout_s):
                value = await tool.call(arguments, _with_call(context, call))
        except TimeoutError:
            return _error(call, f"tool {tool.name!r} timed out after {timeout_s:g} s")
        except ToolError as err:
            return _error(call, str(err))
        except Exception as err:  # a tool's bug must not end the task or the worker
            log.exception("tool raised", tool=tool.name)
            return _error(call, f"tool {tool.name!r} failed: {type(err).__name__}: {err}")
        if isinstance(value, Handoff):
            content = orjson.dumps({"handoff": True, "output": dict(value.output)}).decode()
            return ToolOutcome(call, content, ok=True, value=dict(value.output), handoff=value)
        try:
            content = orjson.dumps(value).decode()
        except TypeError as err:
            return _error(call, f"tool {tool.name!r} returned a value that is not JSON: {err}")
        if cache is not None:
            await cache.set(TOOL_NAMESPACE, key, content.encode(), tool.policy.cache_ttl_s)
        return ToolOutcome(call, content, ok=True, value=value)


def _unavailable(decl: ToolDecl) -> Tool:
    """A built-in this worker cannot offer: the model is told so when it calls it."""

    async def refuse(arguments: dict[str, Any], context: ToolContext) -> Any:
        raise ToolError(f"built-in tool {decl.name!r} is not available on this worker")

    return FunctionTool(decl.name, decl.description or decl.name, ANY_OBJECT, refuse)


def _with_call(context: ToolContext, call: ToolCall) -> ToolContext:
    return ToolContext(context.task, context.messages, context.suspend_credit, call.id)


def _error(call: ToolCall, message: str) -> ToolOutcome:
    return ToolOutcome(call, orjson.dumps({"error": message}).decode(), ok=False)


class _NoMetrics:
    def tool_call(self, tool: str, outcome: str, duration_s: float) -> None:
        return None


class ToolRegistry:
    """Worker-wide: builds each agent's toolset from the built-in factories, Python
    functions and the MCP servers, and keeps one toolset per agent definition."""

    def __init__(
        self,
        builtins: Mapping[str, BuiltinFactory] | None = None,
        *,
        mcp: McpTools | None = None,
        cache: CacheClient | None = None,
        metrics: ToolMetrics | None = None,
        max_parallel: int = 8,
    ) -> None:
        self._builtins = dict(builtins or {})
        self._mcp = mcp
        self.cache = cache
        self.metrics: ToolMetrics = metrics or _NoMetrics()
        self.max_parallel = max_parallel
        self._toolsets: dict[str, AgentToolset] = {}

    def toolset(self, spec: AgentSpec) -> AgentToolset:
        """The toolset of this definition; a reloaded definition gets a fresh one."""
        current = self._toolsets.get(spec.name)
        if current is None or current.spec is not spec:
            current = AgentToolset(self, spec)
            self._toolsets[spec.name] = current
        return current

    def build(self, decl: ToolDecl, spec: AgentSpec) -> Tool:
        if decl.function or decl.entry_point:
            return function_tool(decl)
        factory = self._builtins.get(decl.name)
        if factory is None:
            return _unavailable(decl)
        return factory(decl, spec)

    async def mcp_tools(self, server: McpServerDecl) -> list[Tool]:
        if self._mcp is None:
            raise ToolError("MCP servers are not available on this worker")
        tools = await self._mcp.tools(server)
        for tool in tools:
            if not tool.name.startswith(server.name + MCP_SEPARATOR):
                raise ToolError(f"MCP tool {tool.name!r} is not named for its server")
        return tools
