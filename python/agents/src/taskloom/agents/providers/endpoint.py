"""An endpoint: one provider behind the policies every LLM call goes through, in order —
the circuit breaker (fail fast, or go to the fallback endpoint, while it is open), the rate
limits (wait, bounded), the call with its total timeout, retries with exponential backoff
and full jitter that honour `Retry-After` (only before anything was streamed), and the
usage accounting of what the call spent. It is itself a `Provider`, named after the
endpoint, so the agent loop does not know any of this exists.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Protocol

from taskloom.agents import cost, limits
from taskloom.agents.breaker import BreakerState, CircuitBreaker
from taskloom.agents.endpoints import Endpoint, EndpointKind, RetrySettings
from taskloom.agents.limits import Limiter, LimiterUnavailable, RateLimited, Scope
from taskloom.agents.providers.anthropic import AnthropicProvider
from taskloom.agents.providers.base import (
    GenerationParams,
    Message,
    Provider,
    ProviderError,
    ProviderEvent,
    ToolDefinition,
    UsageUpdate,
)
from taskloom.agents.providers.openai import OpenAIProvider
from taskloom.agents.providers.simulated import SimulatedProvider
from taskloom.agents.tokenizer import estimate_prompt_tokens


class EndpointMetrics(Protocol):
    def llm_call(self, endpoint: str, outcome: str) -> None: ...

    def llm_breaker_state(self, endpoint: str, state: int) -> None: ...

    def llm_request(self, agent: str, model: str, seconds: float, *, ok: bool) -> None: ...


def backoff_s(retry: RetrySettings, attempt: int, retry_after_s: float | None) -> float:
    """Full jitter (uniform in [0, min(cap, initial · 2^attempt)]), but never sooner than
    the server's Retry-After."""
    ceiling = min(retry.max_backoff_s, retry.initial_backoff_s * 2**attempt)
    delay = random.uniform(0, ceiling)
    return max(delay, retry_after_s) if retry_after_s is not None else delay


class EndpointProvider:
    def __init__(
        self,
        endpoint: Endpoint,
        inner: Provider,
        *,
        limiter: Limiter,
        accounting: cost.Accounting,
        metrics: EndpointMetrics,
        fallback: EndpointProvider | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.name = endpoint.name
        self.inner = inner
        self.fallback = fallback
        self._config = endpoint.config
        self._limiter = limiter
        self._accounting = accounting
        self._metrics = metrics
        self.breaker = CircuitBreaker(
            self._config.breaker,
            on_change=lambda state: metrics.llm_breaker_state(self.name, int(state)),
            **({"clock": clock} if clock else {}),
        )
        metrics.llm_breaker_state(self.name, int(self.breaker.state))

    async def aclose(self) -> None:
        await self.inner.aclose()

    def _scopes(self) -> list[Scope]:
        limits_ = self._config.limits
        scopes = [Scope(self.name, limits_)] if limits_.enabled else []
        ledger = cost.current()
        if ledger is not None:
            if limits_.per_tenant.enabled and ledger.tenant:
                scopes.append(Scope(f"{self.name}/tenant/{ledger.tenant}", limits_.per_tenant))
            if limits_.per_agent.enabled and ledger.agent:
                scopes.append(Scope(f"{self.name}/agent/{ledger.agent}", limits_.per_agent))
        return scopes

    def _estimate(
        self,
        scopes: Sequence[Scope],
        messages: Sequence[Message],
        params: GenerationParams,
        tools: Sequence[ToolDefinition],
    ) -> int:
        if not any(s.limit.tokens_per_minute for s in scopes):
            return 0
        # The completion may use all of max_tokens: charge it, refund by the usage after.
        return estimate_prompt_tokens(messages, tools) + params.max_tokens

    async def stream(
        self,
        messages: Sequence[Message],
        model: str,
        params: GenerationParams,
        tools: Sequence[ToolDefinition] = (),
    ) -> AsyncIterator[ProviderEvent]:
        sent_model = self._config.resolve_model(model)
        attempt = 0
        while True:
            if not self.breaker.allow():
                async for event in self._when_open(messages, model, params, tools):
                    yield event
                return
            scopes = self._scopes()
            try:
                permit = await limits.acquire(
                    self._limiter,
                    scopes,
                    self._estimate(scopes, messages, params, tools),
                    self._config.limits.max_wait_s,
                )
            except RateLimited as err:
                self.breaker.release()
                self._metrics.llm_call(self.name, "rate_limited")
                raise ProviderError(
                    f"endpoint {self.name}: {err}", retryable=True, retry_after_s=err.retry_after_s
                ) from None
            except LimiterUnavailable as err:
                self.breaker.release()
                self._metrics.llm_call(self.name, "rate_limited")
                raise ProviderError(f"endpoint {self.name}: {err}", retryable=True) from None
            usage: UsageUpdate | None = None
            yielded = False
            started = time.monotonic()
            try:
                async for event in self._attempt(messages, sent_model, params, tools):
                    if isinstance(event, UsageUpdate):
                        usage = event
                    yielded = True
                    yield event
            except ProviderError as err:
                if err.retryable:
                    self.breaker.failure()
                else:
                    # A refused request (400, 401, ...) says nothing of the endpoint's health.
                    self.breaker.release()
                self._metrics.llm_call(self.name, "error")
                self._request(model, started, ok=False)
                retry = self._config.retry
                delay = backoff_s(retry, attempt, err.retry_after_s)
                if (
                    not err.retryable
                    or yielded
                    or attempt >= retry.max_retries
                    or (err.retry_after_s or 0) > retry.max_backoff_s
                ):
                    raise
                attempt += 1
                await asyncio.sleep(delay)
                continue
            except BaseException:
                self.breaker.release()  # cancelled or closed early: neither success nor failure
                raise
            else:
                self.breaker.success()
                self._metrics.llm_call(self.name, "ok")
                self._request(model, started, ok=True)
                return
            finally:
                await self._limiter.release(
                    permit,
                    usage.prompt_tokens + usage.completion_tokens if usage is not None else None,
                )
                if usage is not None:
                    self._accounting.spent(
                        self.name, model, usage.prompt_tokens, usage.completion_tokens
                    )

    def _request(self, model: str, started: float, *, ok: bool) -> None:
        """One attempt that reached the provider, by the agent (of the task's ledger) and the
        model it asked for. Refusals before the call (rate limit, open breaker) and
        cancellations are no request."""
        ledger = cost.current()
        agent = ledger.agent if ledger is not None else ""
        self._metrics.llm_request(agent, model, time.monotonic() - started, ok=ok)

    async def _attempt(
        self,
        messages: Sequence[Message],
        model: str,
        params: GenerationParams,
        tools: Sequence[ToolDefinition],
    ) -> AsyncIterator[ProviderEvent]:
        """One call, bounded by the endpoint's total timeout (a hung server included)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._config.connection.total_timeout_s
        events = self.inner.stream(messages, model, params, tools)
        try:
            while True:
                try:
                    async with asyncio.timeout_at(deadline):
                        event = await anext(events)
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    raise ProviderError(
                        f"endpoint {self.name}: no answer within "
                        f"{self._config.connection.total_timeout_s:g}s",
                        retryable=True,
                    ) from None
                yield event
        finally:
            await events.aclose()  # type: ignore[attr-defined]

    async def _when_open(
        self,
        messages: Sequence[Message],
        model: str,
        params: GenerationParams,
        tools: Sequence[ToolDefinition],
    ) -> AsyncIterator[ProviderEvent]:
        fallback = self._config.fallback
        if self.fallback is not None and fallback is not None:
            self._metrics.llm_call(self.name, "fallback")
            async for event in self.fallback.stream(
                messages, fallback.model or model, params, tools
            ):
                yield event
            return
        self._metrics.llm_call(self.name, "breaker_open")
        retry_in = self.breaker.retry_in_s()
        raise ProviderError(
            f"endpoint {self.name}: circuit breaker open after repeated failures; "
            f"next probe in {retry_in:.1f}s",
            retryable=True,
            retry_after_s=retry_in,
        )

    def state(self) -> dict[str, Any]:
        """For /readyz: the breaker's state and, while open, when it probes again."""
        out: dict[str, Any] = {
            "kind": self.endpoint.kind.value,
            "breaker": self.breaker.state.name.lower(),
        }
        if self.breaker.state == BreakerState.OPEN:
            out["retry_in_s"] = round(self.breaker.retry_in_s(), 3)
        if self._config.fallback is not None:
            out["fallback"] = self._config.fallback.endpoint
        return out


def inner_provider(
    endpoint: Endpoint, sim_latency_s: float, sim_tokens_per_second: float
) -> Provider:
    """The provider that speaks the endpoint's API."""
    config = endpoint.config
    key = endpoint.api_key.get_secret_value()
    if config.kind == EndpointKind.OPENAI:
        return OpenAIProvider(
            config.base_url, key, connection=config.connection, name=endpoint.name
        )
    if config.kind == EndpointKind.ANTHROPIC:
        return AnthropicProvider(
            config.base_url,
            key,
            connection=config.connection,
            version=config.anthropic_version,
            name=endpoint.name,
        )
    sim = config.simulated
    return SimulatedProvider(
        sim.latency_ms / 1000 if sim.latency_ms is not None else sim_latency_s,
        sim.tokens_per_second if sim.tokens_per_second is not None else sim_tokens_per_second,
        failures=sim.failures,
    )


def build_endpoint_providers(
    endpoints: dict[str, Endpoint],
    *,
    limiter: Limiter,
    accounting: cost.Accounting,
    metrics: EndpointMetrics,
    sim_latency_s: float,
    sim_tokens_per_second: float,
) -> dict[str, EndpointProvider]:
    """One provider per endpoint, each wired to its fallback."""
    providers = {
        name: EndpointProvider(
            endpoint,
            inner_provider(endpoint, sim_latency_s, sim_tokens_per_second),
            limiter=limiter,
            accounting=accounting,
            metrics=metrics,
        )
        for name, endpoint in endpoints.items()
    }
    for provider in providers.values():
        if (fallback := provider.endpoint.config.fallback) is not None:
            provider.fallback = providers[fallback.endpoint]
    return providers
