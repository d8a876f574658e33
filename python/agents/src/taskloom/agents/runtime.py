"""One agent run: turn a task's input into chat messages, answer from the LLM cache or
stream from the agent's provider, and build the JSON result. Knows nothing of gRPC."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import structlog

from taskloom.agents.cache_client import CacheClient
from taskloom.agents.catalog import AgentSpec, Catalog
from taskloom.agents.providers import GenerationParams, Message, Provider, ProviderError, Usage
from taskloom.agents.telemetry import Telemetry

log = structlog.get_logger(__name__)

LLM_NAMESPACE = "llm"
_ROLES = frozenset({"system", "user", "assistant", "tool"})
_CHUNK = re.compile(r"\S*\s*")

OnChunk = Callable[[str], Awaitable[None]]


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


def cache_key(provider: str, model: str, messages: list[Message], params: GenerationParams) -> str:
    payload = {
        "provider": provider,
        "model": model,
        "messages": messages,
        "params": {"temperature": params.temperature, "max_tokens": params.max_tokens},
    }
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()


class AgentRuntime:
    def __init__(
        self,
        catalog: Catalog,
        providers: Mapping[str, Provider],
        telemetry: Telemetry,
        cache: CacheClient | None = None,
        cache_ttl_s: float = 0.0,
    ) -> None:
        self.catalog = catalog
        self._providers = providers
        self._telemetry = telemetry
        self._cache = cache
        self._cache_ttl_s = cache_ttl_s

    async def run(self, agent: str, task_input: Any, on_chunk: OnChunk) -> RunResult:
        spec = self.catalog.get(agent)
        if spec is None:
            raise AgentError(f"agent {agent!r} is not in this worker's catalog", retryable=False)
        provider = self._providers[spec.provider]
        messages = build_messages(spec, task_input)
        params = GenerationParams(temperature=spec.temperature, max_tokens=spec.max_tokens)
        result = {
            "agent": spec.name,
            "provider": spec.provider.value,
            "model": spec.model,
            "simulated": spec.provider == "simulated",
        }

        key = ""
        if spec.cache and self._cache is not None:
            key = cache_key(spec.provider, spec.model, messages, params)
            cached = await self._cached_text(key)
            self._telemetry.llm_cache(hit=cached is not None)
            if cached is not None:
                for piece in _CHUNK.findall(cached):
                    if piece:
                        await on_chunk(piece)
                usage = {"prompt_tokens": 0, "completion_tokens": 0, "cached_completions": 1}
                return RunResult(
                    output={"text": cached, **result, "cached": True, "usage": usage},
                    cached_completions=1,
                )

        usage = Usage()
        parts: list[str] = []
        try:
            async for piece in provider.stream(messages, spec.model, params, usage):
                parts.append(piece)
                await on_chunk(piece)
        except ProviderError as err:
            raise AgentError(str(err), retryable=err.retryable) from err
        finally:
            self._telemetry.llm_tokens(provider.name, usage.prompt_tokens, usage.completion_tokens)
        text = "".join(parts)

        if key and self._cache is not None:
            value = orjson.dumps({"text": text})
            await self._cache.set(LLM_NAMESPACE, key, value, self._cache_ttl_s)
        usage_out = {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "cached_completions": 0,
        }
        return RunResult(
            output={"text": text, **result, "cached": False, "usage": usage_out},
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
        )

    async def _cached_text(self, key: str) -> str | None:
        assert self._cache is not None
        raw = await self._cache.get(LLM_NAMESPACE, key)
        if raw is None:
            return None
        try:
            text = orjson.loads(raw)["text"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            log.warning("ignoring malformed llm cache entry", key=key)
            return None
        return text if isinstance(text, str) else None
