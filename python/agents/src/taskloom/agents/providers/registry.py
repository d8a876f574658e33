"""The worker's LLM endpoints, built once at start: the configured and implicit endpoints
(validated, keys read from the environment), one `EndpointProvider` each wired to its
fallback, the shared rate limiter (Redis, or this process) and the cost accounting."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import SecretStr

from taskloom.agents import cost, tokenizer
from taskloom.agents.endpoints import (
    ConnectionSettings,
    EndpointConfig,
    ImplicitDefaults,
    RetrySettings,
    build_endpoints,
)
from taskloom.agents.limits import Limiter, LocalLimiter, RedisLimiter
from taskloom.agents.providers.endpoint import (
    EndpointMetrics,
    EndpointProvider,
    build_endpoint_providers,
)


class Metrics(EndpointMetrics, cost.UsageMetrics, Protocol):
    """What the endpoints report to (the worker's Telemetry)."""


@dataclass
class LLMEndpoints:
    providers: dict[str, EndpointProvider]
    accounting: cost.Accounting
    limiter: Limiter

    def states(self) -> dict[str, Any]:
        """Each endpoint's breaker state, for /readyz."""
        return {name: provider.state() for name, provider in self.providers.items()}

    async def warm_up(self) -> None:
        """Load the tokenizer off the event loop when a tokens-per-minute limit needs it."""
        if any(
            p.endpoint.config.limits.tokens_per_minute
            or p.endpoint.config.limits.per_tenant.tokens_per_minute
            or p.endpoint.config.limits.per_agent.tokens_per_minute
            for p in self.providers.values()
        ):
            await asyncio.to_thread(tokenizer.encoding)

    async def aclose(self) -> None:
        for provider in self.providers.values():
            await provider.aclose()
        await self.limiter.aclose()


@dataclass(frozen=True)
class LegacySettings:
    """The worker's settings from before named endpoints, for the implicit ones."""

    openai_base_url: str
    openai_api_key: SecretStr
    llm_timeout_s: float
    llm_max_retries: int
    sim_latency_s: float
    sim_tokens_per_second: float


def build_llm_endpoints(
    configured: Mapping[str, EndpointConfig],
    agents: Iterable[tuple[str, str]],
    environ: Mapping[str, str],
    legacy: LegacySettings,
    metrics: Metrics,
    redis_url: str = "",
) -> LLMEndpoints:
    """`agents` are (agent, endpoint) pairs; raises EndpointConfigError naming the problem."""
    used: dict[str, list[str]] = {}
    for agent, endpoint in agents:
        used.setdefault(endpoint, []).append(agent)
    endpoints = build_endpoints(
        configured,
        used,
        environ,
        ImplicitDefaults(
            openai_base_url=legacy.openai_base_url,
            openai_api_key=legacy.openai_api_key,
            connection=ConnectionSettings(read_timeout_s=legacy.llm_timeout_s),
            retry=RetrySettings(max_retries=legacy.llm_max_retries),
        ),
    )
    longest_call_s = max(e.config.connection.total_timeout_s for e in endpoints.values())
    limiter: Limiter = (
        RedisLimiter(redis_url, lease_s=longest_call_s) if redis_url else LocalLimiter()
    )
    accounting = cost.Accounting(endpoints, metrics)
    providers = build_endpoint_providers(
        endpoints,
        limiter=limiter,
        accounting=accounting,
        metrics=metrics,
        sim_latency_s=legacy.sim_latency_s,
        sim_tokens_per_second=legacy.sim_tokens_per_second,
    )
    return LLMEndpoints(providers, accounting, limiter)
