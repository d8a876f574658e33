"""One agent run: turn a task's input into chat messages, then loop LLM → tool calls → tool
results → LLM until the model answers without calling a tool or the agent's
`max_iterations` is reached. Each LLM turn is answered from the LLM cache or streamed from
the agent's provider; typed events go to `on_event` as they happen. Knows nothing of gRPC.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
import structlog
from opentelemetry.trace import SpanKind

from taskloom.agents import cost, semantic_cache
from taskloom.agents.cache_client import CacheClient
from taskloom.agents.catalog import AgentSpec, Catalog
from taskloom.agents.journal import Journal, JournalResult, JournalTurn
from taskloom.agents.memory.long_term import LongTermMemory
from taskloom.agents.memory.recall import recall_into_prompt
from taskloom.agents.memory.sessions import SessionMemory, SessionsUnavailable
from taskloom.agents.providers.base import (
    GenerationParams,
    Message,
    Provider,
    ProviderError,
    ProviderEvent,
    TextDelta,
    ThoughtDelta,
    ToolCall,
    ToolCallComplete,
    ToolCallMessage,
    ToolDefinition,
    Usage,
    UsageUpdate,
)
from taskloom.agents.telemetry import Telemetry
from taskloom.agents.tools import builtin_factories
from taskloom.agents.tools.base import SuspendCredit, TaskInfo, ToolContext, ToolError
from taskloom.agents.tools.registry import AgentToolset, ToolOutcome, ToolRegistry
from taskloom.sdk import tracing
from taskloom.sdk.collections import CollectionError
from taskloom.sdk.embeddings import EmbeddingError
from taskloom.sdk.sessions import SessionStoreError

log = structlog.get_logger(__name__)

LLM_NAMESPACE = "llm"
_ROLES = frozenset({"system", "user", "assistant", "tool"})
_CHUNK = re.compile(r"\S*\s*")


@dataclass(frozen=True)
class ToolResultEvent:
    """A tool call has finished (streamed beside the provider's events)."""

    call_id: str
    name: str
    ok: bool
    content: str
    cached: bool = False


AgentEvent = ProviderEvent | ToolResultEvent
OnEvent = Callable[[AgentEvent], Awaitable[None]]


class AgentError(Exception):
    """The agent could not produce a result; `retryable` says whether a retry may help."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass
class RunResult:
    output: dict[str, Any]
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_completions: int = 0
    # This task's own LLM usage and cost by endpoint and model (see taskloom.agents.cost).
    usage: cost.TaskUsage | None = None


@dataclass(frozen=True)
class RunSettings:
    """What one task runs with: the agent's values, narrowed by the task's overrides."""

    params: GenerationParams
    max_iterations: int


def build_messages(spec: AgentSpec, task_input: Any) -> list[Message]:
    """Accept a string, `{"prompt": str}` or `{"messages": [...]}`; the agent's system prompt
    goes first unless the messages bring their own."""
    messages: list[Message] = []
    if isinstance(task_input, str):
        messages.append({"role": "user", "content": task_input})
    elif isinstance(task_input, Mapping) and isinstance(task_input.get("prompt"), str):
        messages.append({"role": "user", "content": task_input["prompt"]})
    elif isinstance(task_input, Mapping) and isinstance(task_input.get("messages"), list):
        for i, raw in enumerate(task_input["messages"]):
            if (
                not isinstance(raw, Mapping)
                or raw.get("role") not in _ROLES
                or not isinstance(raw.get("content"), str)
            ):
                raise AgentError(
                    f"input.messages[{i}] must be an object with a role "
                    f"({', '.join(sorted(_ROLES))}) and a string content",
                    retryable=False,
                )
            messages.append({"role": raw["role"], "content": raw["content"]})
    else:
        raise AgentError(
            'input must be a string, {"prompt": "..."} or {"messages": [{"role", "content"}, ...]}',
            retryable=False,
        )
    if not any(m["role"] == "user" for m in messages):
        raise AgentError("input has no user message", retryable=False)
    if spec.system and not any(m["role"] == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": spec.system})
    return messages


def run_settings(spec: AgentSpec, task_input: Any) -> RunSettings:
    """The agent's settings with the task's `max_tokens`, `temperature` and `max_iterations`
    overrides, each within the agent's limits; an override outside them is an error that
    names the field."""
    overrides = task_input if isinstance(task_input, Mapping) else {}
    max_tokens = _override(overrides, "max_tokens", int, 1, spec.max_tokens, spec.max_tokens)
    temperature = _override(overrides, "temperature", float, 0.0, 2.0, spec.temperature)
    iterations = _override(
        overrides, "max_iterations", int, 1, spec.max_iterations, spec.max_iterations
    )
    options: dict[str, Any] = {}
    simulate = dict(spec.simulate)
    if isinstance(overrides.get("simulate"), Mapping):
        simulate.update(overrides["simulate"])
    elif "simulate" in overrides:
        raise AgentError("input.simulate must be an object", retryable=False)
    if simulate:
        options["simulate"] = simulate
    return RunSettings(GenerationParams(temperature, max_tokens, options), iterations)


_Number = TypeVar("_Number", int, float)


def _override(
    overrides: Mapping[str, Any],
    name: str,
    kind: type[_Number],
    low: _Number,
    high: _Number,
    default: _Number,
) -> _Number:
    if name not in overrides:
        return default
    value = overrides[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or kind(value) != value:
        raise AgentError(f"input.{name} must be {kind.__name__}, got {value!r}", retryable=False)
    if not low <= value <= high:
        raise AgentError(
            f"input.{name} = {value} is outside the agent's limits [{low}, {high}]",
            retryable=False,
        )
    return kind(value)


def cache_key(
    provider: str,
    model: str,
    messages: Sequence[Message],
    params: GenerationParams,
    tools: Sequence[ToolDefinition] = (),
) -> str:
    payload: dict[str, Any] = {
        "provider": provider,
        "model": model,
        "messages": messages,
        "params": {"temperature": params.temperature, "max_tokens": params.max_tokens},
    }
    if params.options:
        payload["options"] = params.options
    if tools:
        payload["tools"] = [[t.name, t.description, t.parameters] for t in tools]
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()


class AgentRuntime:
    def __init__(
        self,
        catalog: Catalog,
        providers: Mapping[str, Provider],
        telemetry: Telemetry,
        cache: CacheClient | None = None,
        cache_ttl_s: float = 0.0,
        tools: ToolRegistry | None = None,
        accounting: cost.Accounting | None = None,
        sessions: SessionMemory | None = None,
        semantic: semantic_cache.SemanticCache | None = None,
        memory: LongTermMemory | None = None,
    ) -> None:
        self.semantic = semantic
        self.memory = memory
        self.catalog = catalog
        self.sessions = sessions or SessionMemory(None)
        self._accounting = accounting
        self._providers = providers
        self._telemetry = telemetry
        self._cache = cache
        self._cache_ttl_s = cache_ttl_s
        self.tools = tools or ToolRegistry(builtin_factories(), cache=cache)

    async def run(
        self,
        agent: str,
        task_input: Any,
        on_event: OnEvent,
        task: TaskInfo | None = None,
        suspend_credit: SuspendCredit | None = None,
        journal: Journal | None = None,
    ) -> RunResult:
        """Run the agent loop within a fresh usage ledger, which the result carries. With a
        journal, the turns and tool results it recorded in earlier attempts are replayed
        instead of run, and those of this run recorded."""
        tenant = task.tenant if task is not None else TaskInfo("", agent).tenant
        with cost.task_usage(tenant, agent) as ledger:
            result = await self._run(
                agent, task_input, on_event, task, suspend_credit, journal or Journal()
            )
        result.usage = ledger
        result.output.setdefault("usage", {}).update(ledger.summary())
        return result

    async def _run(
        self,
        agent: str,
        task_input: Any,
        on_event: OnEvent,
        task: TaskInfo | None,
        suspend_credit: SuspendCredit | None,
        journal: Journal,
    ) -> RunResult:
        spec = self.catalog.get(agent)
        if spec is None:
            raise AgentError(f"agent {agent!r} is not in this worker's catalog", retryable=False)
        provider = self._providers.get(spec.provider)
        if provider is None:
            raise AgentError(f"provider {spec.provider!r} is not configured", retryable=False)
        messages = build_messages(spec, task_input)
        settings = run_settings(spec, task_input)
        toolset = self.tools.toolset(spec) if spec.tools or spec.mcp_servers else None
        try:
            definitions = await toolset.definitions() if toolset is not None else []
        except ToolError as err:
            raise AgentError(str(err), retryable=True) from err
        info = task or TaskInfo("", agent)
        new_messages = list(messages)
        if spec.memory.auto_recall:
            messages = await self._with_memories(spec, info, messages)
        if info.session_id:
            messages = await self._with_session(spec, info, messages, definitions)
        context = ToolContext(info, messages, suspend_credit)

        totals = Usage()
        cached_turns = 0
        tool_log: list[dict[str, Any]] = []
        for iteration in range(1, settings.max_iterations + 1):
            turn = journal.replay_turn()
            if turn is not None:
                await _replay_events(turn, on_event)
            else:
                turn = await self._turn(
                    spec, provider, messages, settings.params, definitions, on_event, info.tenant
                )
                journal.record_turn(turn)
            totals.prompt_tokens += turn.usage.prompt_tokens
            totals.completion_tokens += turn.usage.completion_tokens
            cached_turns += turn.cached
            assistant: Message = {"role": "assistant", "content": turn.text}
            if turn.calls:
                assistant["tool_calls"] = [_call_message(c) for c in turn.calls]
            messages.append(assistant)
            if not turn.calls:
                if info.session_id:
                    await self._record_session(info, new_messages, turn.text)
                return self._result(spec, turn.text, totals, cached_turns, iteration, tool_log)
            if toolset is None:
                raise AgentError(
                    f"the model called {turn.calls[0].name!r} but agent {spec.name!r} has no tools",
                    retryable=False,
                )
            context.messages = list(messages)
            outcomes = await _run_tools(toolset, turn.calls, context, journal)
            for outcome in outcomes:
                await on_event(_result_event(outcome))
                tool_log.append(
                    {"name": outcome.call.name, "ok": outcome.ok, "cached": outcome.cached}
                )
                messages.append(
                    {
                        "role": "tool",
                        "content": outcome.content,
                        "tool_call_id": outcome.call.id,
                        "name": outcome.call.name,
                    }
                )
            if handoff := next((o.handoff for o in outcomes if o.handoff is not None), None):
                totals.prompt_tokens += handoff.prompt_tokens
                totals.completion_tokens += handoff.completion_tokens
                output = {**dict(handoff.output), "usage": _usage(totals, cached_turns)}
                return RunResult(
                    output,
                    totals.prompt_tokens,
                    totals.completion_tokens,
                    cached_turns,
                )
        raise AgentError(
            f"agent {spec.name!r} reached max_iterations ({settings.max_iterations}) "
            "without a final answer",
            retryable=False,
        )

    async def _with_memories(
        self, spec: AgentSpec, task: TaskInfo, messages: list[Message]
    ) -> list[Message]:
        if self.memory is None:
            raise AgentError(
                f"agent {spec.name!r} recalls memories (memory.auto_recall), which needs a "
                "vector service: set vector_addr",
                retryable=False,
            )
        try:
            return await recall_into_prompt(self.memory, spec, task.tenant, messages)
        except (CollectionError, EmbeddingError) as err:
            raise AgentError(f"could not recall memories: {err}", retryable=True) from err

    async def _with_session(
        self,
        spec: AgentSpec,
        task: TaskInfo,
        messages: list[Message],
        definitions: Sequence[ToolDefinition],
    ) -> list[Message]:
        try:
            return await self.sessions.prepare(
                spec, task.tenant, task.session_id, messages, definitions
            )
        except SessionsUnavailable as err:
            raise AgentError(str(err), retryable=False) from err
        except SessionStoreError as err:
            raise AgentError(f"session store unreachable: {err}", retryable=True) from err

    async def _record_session(self, task: TaskInfo, new: list[Message], answer: str) -> None:
        try:
            await self.sessions.record(task.tenant, task.session_id, new, answer)
        except SessionStoreError as err:
            raise AgentError(f"session store unreachable: {err}", retryable=True) from err

    def _result(
        self,
        spec: AgentSpec,
        text: str,
        totals: Usage,
        cached_turns: int,
        iterations: int,
        tool_log: list[dict[str, Any]],
    ) -> RunResult:
        output: dict[str, Any] = {
            "text": text,
            "agent": spec.name,
            "provider": spec.provider,
            "model": spec.model,
            "simulated": spec.provider == "simulated",
            "cached": cached_turns == iterations,
            "usage": _usage(totals, cached_turns),
        }
        if tool_log:
            output["iterations"] = iterations
            output["tool_calls"] = tool_log
        return RunResult(output, totals.prompt_tokens, totals.completion_tokens, cached_turns)

    async def _turn(
        self,
        spec: AgentSpec,
        provider: Provider,
        messages: Sequence[Message],
        params: GenerationParams,
        tools: Sequence[ToolDefinition],
        on_event: OnEvent,
        tenant: str = "default",
    ) -> JournalTurn:
        """One LLM turn, answered by the cache or the provider: an `llm.call` span."""
        with tracing.span(
            "llm.call",
            kind=SpanKind.CLIENT,
            attributes={"gen_ai.system": spec.provider, "gen_ai.request.model": spec.model},
        ) as span:
            key = ""
            if spec.cache and self._cache is not None:
                key = cache_key(spec.provider, spec.model, messages, params, tools)
                cached = await self._cached_turn(key)
                self._telemetry.llm_cache(spec.name, spec.model, hit=cached is not None)
                span.set_attribute("taskloom.cache", "miss" if cached is None else "hit")
                if cached is not None and self._accounting is not None:
                    saved = cached.original_usage
                    self._accounting.saved(
                        spec.provider, spec.model, saved.prompt_tokens, saved.completion_tokens
                    )
                if cached is not None:
                    await _replay(cached, on_event)
                    return cached
            semantic = await self._semantic_lookup(spec, tenant, messages, params, tools)
            if semantic is not None and semantic.hit is not None:
                span.set_attribute("taskloom.cache", "hit")
                similar = JournalTurn(
                    text=semantic.hit.text,
                    calls=[
                        ToolCall(c["id"], c["name"], c["arguments"])
                        for c in semantic.hit.tool_calls
                    ],
                    cached=True,
                )
                await _replay(similar, on_event)
                return similar

            calls: list[ToolCall] = []
            usage = Usage()
            parts: list[str] = []
            try:
                async for event in provider.stream(messages, spec.model, params, tools):
                    if isinstance(event, TextDelta):
                        parts.append(event.text)
                    elif isinstance(event, ToolCallComplete):
                        calls.append(event.call)
                    elif isinstance(event, UsageUpdate):
                        usage = Usage(event.prompt_tokens, event.completion_tokens)
                        continue  # usage is reported once per task, in the result
                    elif not isinstance(event, ThoughtDelta):
                        continue  # argument deltas: the complete call follows
                    await on_event(event)
            except ProviderError as err:
                raise AgentError(str(err), retryable=err.retryable) from err
            turn = JournalTurn("".join(parts), calls, usage)
            await on_event(UsageUpdate(usage.prompt_tokens, usage.completion_tokens))

            if key and self._cache is not None:
                value = {
                    "text": turn.text,
                    "tool_calls": [_call_message(c) for c in turn.calls],
                    "usage": [turn.usage.prompt_tokens, turn.usage.completion_tokens],
                }
                await self._cache.set(LLM_NAMESPACE, key, orjson.dumps(value), self._cache_ttl_s)
            if semantic is not None and semantic.vector is not None and self.semantic is not None:
                answered: list[dict[str, Any]] = [dict(_call_message(c)) for c in turn.calls]
                await self.semantic.store(
                    tenant, semantic.scope, semantic.vector, turn.text, answered
                )
            # Tokens spent by this call (a cache's answer spent none).
            span.set_attribute("gen_ai.usage.input_tokens", turn.usage.prompt_tokens)
            span.set_attribute("gen_ai.usage.output_tokens", turn.usage.completion_tokens)
            return turn

    async def _semantic_lookup(
        self,
        spec: AgentSpec,
        tenant: str,
        messages: Sequence[Message],
        params: GenerationParams,
        tools: Sequence[ToolDefinition],
    ) -> _SemanticLookup | None:
        """After an exact miss: the semantic cache's answer, for agents that enable it."""
        if not spec.semantic_cache.enabled or self.semantic is None:
            return None
        text = semantic_cache.question(messages)
        if text is None:
            return None
        scope = semantic_cache.scope(spec, tenant, messages, params, tools)
        hit, vector = await self.semantic.lookup(tenant, scope, text, spec.semantic_cache.threshold)
        return _SemanticLookup(scope, hit, vector)

    async def _cached_turn(self, key: str) -> JournalTurn | None:
        assert self._cache is not None
        raw = await self._cache.get(LLM_NAMESPACE, key)
        if raw is None:
            return None
        try:
            value = orjson.loads(raw)
            text = value["text"]
            calls = [
                ToolCall(c["id"], c["name"], c["arguments"]) for c in value.get("tool_calls", ())
            ]
            original = Usage(*(int(n) for n in value.get("usage", (0, 0))))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning("ignoring malformed llm cache entry", key=key)
            return None
        if not isinstance(text, str):
            return None
        return JournalTurn(text=text, calls=calls, cached=True, original_usage=original)


@dataclass(frozen=True)
class _SemanticLookup:
    scope: str
    hit: semantic_cache.SemanticHit | None
    vector: list[float] | None


async def _replay(turn: JournalTurn, on_event: OnEvent) -> None:
    """Streams a cached turn as if the model were answering."""
    for piece in _CHUNK.findall(turn.text):
        if piece:
            await on_event(TextDelta(piece))
    for call in turn.calls:
        await on_event(ToolCallComplete(call))


async def _replay_events(turn: JournalTurn, on_event: OnEvent) -> None:
    """What a replayed turn streams: its text, its tool calls, its usage (as run)."""
    if turn.text:
        await on_event(TextDelta(turn.text))
    for call in turn.calls:
        await on_event(ToolCallComplete(call))
    await on_event(UsageUpdate(turn.usage.prompt_tokens, turn.usage.completion_tokens))


async def _run_tools(
    toolset: AgentToolset, calls: Sequence[ToolCall], context: ToolContext, journal: Journal
) -> list[ToolOutcome]:
    """The outcomes of a turn's calls, in order: replayed from the journal where it holds
    the result of a replayable tool, else run (and recorded, when replayable)."""
    replayed = journal.replayed_results(toolset.replayable)
    live = [c for c in calls if c.id not in replayed]
    ran = await toolset.execute(live, context) if live else []
    journal.record_results(
        [_journal_result(o) for o in ran if o.handoff is None and toolset.replayable(o.call.name)]
    )
    by_id = {o.call.id: o for o in ran}
    return [
        by_id[c.id] if c.id not in replayed else _replayed_outcome(c, replayed[c.id]) for c in calls
    ]


def _journal_result(outcome: ToolOutcome) -> JournalResult:
    call = outcome.call
    return JournalResult(call.id, call.name, outcome.ok, outcome.content, outcome.cached)


def _replayed_outcome(call: ToolCall, result: JournalResult) -> ToolOutcome:
    return ToolOutcome(call, result.content, result.ok, cached=result.cached)


def _call_message(call: ToolCall) -> ToolCallMessage:
    return {"id": call.id, "name": call.name, "arguments": call.arguments}


def _result_event(outcome: ToolOutcome) -> ToolResultEvent:
    return ToolResultEvent(
        outcome.call.id, outcome.call.name, outcome.ok, outcome.content, outcome.cached
    )


def _usage(totals: Usage, cached_turns: int) -> dict[str, int]:
    return {
        "prompt_tokens": totals.prompt_tokens,
        "completion_tokens": totals.completion_tokens,
        "cached_completions": cached_turns,
    }
