"""The LLM cache in the agent run, against a dict-backed CacheService on a real gRPC port."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Sequence

import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from taskloom.agents.cache_client import CacheClient
from taskloom.agents.catalog import load_catalog
from taskloom.agents.metrics_reporter import MetricsReporter
from taskloom.agents.providers import (
    GenerationParams,
    Message,
    ProviderEvent,
    TextDelta,
    ToolDefinition,
)
from taskloom.agents.providers.registry import LegacySettings, build_llm_endpoints
from taskloom.agents.providers.simulated import SimulatedProvider
from taskloom.agents.runtime import LLM_NAMESPACE, AgentRuntime
from taskloom.agents.telemetry import Telemetry

pytestmark = pytest.mark.asyncio

SIMULATED_ONLY = LegacySettings(
    openai_base_url="http://127.0.0.1:9/v1",
    openai_api_key=SecretStr(""),
    llm_timeout_s=10,
    llm_max_retries=0,
    sim_latency_s=0,
    sim_tokens_per_second=0,
)


class CountingProvider(SimulatedProvider):
    def __init__(self) -> None:
        super().__init__(latency_s=0, tokens_per_second=0)
        self.calls = 0

    def stream(
        self,
        messages: Sequence[Message],
        model: str,
        params: GenerationParams,
        tools: Sequence[ToolDefinition] = (),
    ) -> AsyncIterator[ProviderEvent]:
        self.calls += 1
        return super().stream(messages, model, params, tools)


async def run_once(runtime, prompt: str) -> tuple[dict, list[str]]:
    chunks: list[str] = []

    async def on_event(event: object) -> None:
        if isinstance(event, TextDelta):
            chunks.append(event.text)

    result = await runtime.run("assistant", {"prompt": prompt}, on_event)
    return result.output, chunks


async def test_second_identical_task_is_served_from_cache(cache_server, runtime_factory) -> None:
    fake_cache, addr = cache_server
    provider = CountingProvider()
    cache = CacheClient(addr)
    runtime = runtime_factory(provider, cache)
    try:
        first, first_chunks = await run_once(runtime, "cache me")
        second, second_chunks = await run_once(runtime, "cache me")
    finally:
        await cache.aclose()
    assert provider.calls == 1
    assert first["cached"] is False and second["cached"] is True
    assert second["text"] == first["text"] == "".join(second_chunks) == "".join(first_chunks)
    assert second["usage"]["cached_completions"] == 1
    assert [ns for ns, _ in fake_cache.data] == [LLM_NAMESPACE]

    await run_once(runtime_factory(provider, None), "cache me")
    assert provider.calls == 2  # without a cache the provider answers every time


async def test_different_prompt_misses_the_cache(cache_server, runtime_factory) -> None:
    _, addr = cache_server
    provider = CountingProvider()
    cache = CacheClient(addr)
    runtime = runtime_factory(provider, cache)
    try:
        await run_once(runtime, "one")
        output, _ = await run_once(runtime, "two")
    finally:
        await cache.aclose()
    assert provider.calls == 2 and output["cached"] is False


async def test_task_succeeds_when_cache_is_down(runtime_factory) -> None:
    with socket.socket() as sock:  # a port with nothing listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cache = CacheClient(f"127.0.0.1:{port}", timeout_s=0.5)
    provider = CountingProvider()
    try:
        output, chunks = await run_once(runtime_factory(provider, cache), "still works")
    finally:
        await cache.aclose()
    assert output["cached"] is False
    assert output["text"].startswith("[simulated]")
    assert "".join(chunks) == output["text"]


async def test_requests_latency_and_cache_are_counted_per_agent_and_model(
    cache_server, telemetry: Telemetry
) -> None:
    """What SummarizeAgents reads: one request (with its latency) per turn that reached the
    provider, and each cache lookup, labelled by the agent and its model."""
    _, addr = cache_server
    cache = CacheClient(addr)
    catalog = load_catalog()
    llm = build_llm_endpoints(
        {}, [(n, s.provider) for n, s in catalog.items()], {}, SIMULATED_ONLY, telemetry
    )
    runtime = AgentRuntime(catalog, llm.providers, telemetry, cache)
    try:
        await run_once(runtime, "count me")
        await run_once(runtime, "count me")
    finally:
        await cache.aclose()
        await llm.aclose()
    agent = {"agent": "assistant", "model": "sim-1"}

    def sample(name: str, **labels: str) -> float | None:
        return telemetry.registry.get_sample_value(name, {**agent, **labels})

    assert sample("taskloom_agent_llm_requests_total", outcome="ok") == 1
    assert sample("taskloom_agent_llm_request_duration_seconds_count") == 1
    assert sample("taskloom_agent_llm_cache_total", result="miss") == 1
    assert sample("taskloom_agent_llm_cache_total", result="hit") == 1


async def test_the_worker_and_agent_metrics_share_one_client() -> None:
    """AgentMetrics and the worker's own series go through the reporter's one client, each
    name with one label set (the tokens keep the worker's: tenant and endpoint too)."""
    reporter = MetricsReporter("")
    telemetry = Telemetry(reporter, registry=CollectorRegistry())
    labels = {"tenant": "t", "agent": "a", "endpoint": "e", "model": "m"}
    telemetry.llm_request("a", "m", 0.2, ok=False)
    telemetry.llm_cache("a", "m", hit=True)
    telemetry.llm_usage(labels, 3, 4, None)
    client = reporter.client
    assert client.counter(
        "taskloom_agent_llm_tokens_total",
        labelnames=("agent", "endpoint", "kind", "model", "tenant"),
    )
    with pytest.raises(ValueError):
        client.counter("taskloom_agent_llm_tokens_total", labelnames=("agent", "model", "kind"))
    assert (
        telemetry.registry.get_sample_value(
            "taskloom_agent_llm_requests_total", {"agent": "a", "model": "m", "outcome": "error"}
        )
        == 1
    )
