"""Cost accounting through the agent run: the result carries its tokens and cost by endpoint
and model, a cache hit counts what it saved, an unpriced model is said to be unpriced, and
the worker's metrics count all of it by tenant, agent, endpoint and model. Real servers:
an OpenAI-compatible API over HTTP and a CacheService over gRPC."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from taskloom.agents.cache_client import CacheClient
from taskloom.agents.catalog import load_catalog
from taskloom.agents.endpoints import Price, parse_endpoints
from taskloom.agents.providers.registry import LegacySettings, build_llm_endpoints
from taskloom.agents.runtime import AgentRuntime
from taskloom.agents.tools.base import TaskInfo

pytestmark = pytest.mark.asyncio

LEGACY = LegacySettings("http://127.0.0.1:9/v1", SecretStr(""), 10, 0, 0, 0)


async def nothing(event: Any) -> None:
    return None


def sample(telemetry: Any, name: str, **labels: str) -> float | None:
    return telemetry.registry.get_sample_value(name, labels)


async def run_twice(
    tmp_path: Path, telemetry: Any, base_url: str, cache_addr: str, prices: dict[str, Any]
) -> list[dict[str, Any]]:
    (tmp_path / "writer.yaml").write_text("name: writer\nprovider: gpt\nmodel: small\n")
    config = {
        "gpt": {
            "kind": "openai",
            "base_url": base_url,
            "models": {"small": "gpt-small"},
            "prices": prices,
        }
    }
    catalog = load_catalog([tmp_path])
    llm = build_llm_endpoints(parse_endpoints(config), [("writer", "gpt")], {}, LEGACY, telemetry)
    cache = CacheClient(cache_addr)
    runtime = AgentRuntime(catalog, llm.providers, telemetry, cache, accounting=llm.accounting)
    task = TaskInfo("t", "writer", tenant="acme")
    try:
        first = await runtime.run("writer", "hello", nothing, task)
        second = await runtime.run("writer", "hello", nothing, task)
    finally:
        await cache.aclose()
        await llm.aclose()
    assert first.usage is not None and second.usage is not None
    return [first.output["usage"], second.output["usage"]]


async def test_cost_is_in_the_result_and_a_cache_hit_counts_what_it_saved(
    tmp_path: Path, telemetry, fake_openai, cache_server
) -> None:
    _, cache_addr = cache_server
    prices = {"gpt-small": {"input": 0.15, "output": 0.6}}
    first, second = await run_twice(tmp_path, telemetry, fake_openai.base_url, cache_addr, prices)
    assert len(fake_openai.requests) == 1
    cost = Price(input=0.15, output=0.6).cost_nano_usd(7, 3) / 1e9
    assert first["cost_usd"] == pytest.approx(cost)
    assert first["models"][0]["model"] == "gpt-small"
    assert (first["saved_tokens"], first["saved_cost_usd"]) == (0, 0)
    assert "unpriced" not in first
    # The second answer came from the cache: nothing spent, all of it saved.
    assert second["cost_usd"] == 0 and second["cached_completions"] == 1
    assert second["saved_tokens"] == 10
    assert second["saved_cost_usd"] == pytest.approx(cost)
    labels = {"tenant": "acme", "agent": "writer", "endpoint": "gpt", "model": "gpt-small"}
    assert sample(telemetry, "taskloom_agent_llm_cost_usd_total", **labels) == pytest.approx(cost)
    assert sample(telemetry, "taskloom_agent_llm_cache_saved_cost_usd_total", **labels) == (
        pytest.approx(cost)
    )
    saved = sample(
        telemetry, "taskloom_agent_llm_cache_saved_tokens_total", **labels, kind="prompt"
    )
    assert saved == 7


async def test_a_model_without_a_price_has_no_cost_and_says_so(
    tmp_path: Path, telemetry, fake_openai, cache_server
) -> None:
    _, cache_addr = cache_server
    first, _ = await run_twice(tmp_path, telemetry, fake_openai.base_url, cache_addr, {})
    assert first["models"][0]["cost_usd"] is None
    assert first["unpriced"] == ["gpt/gpt-small"]
    assert "no price is configured for gpt/gpt-small" in first["cost_note"]
    labels = {"tenant": "acme", "agent": "writer", "endpoint": "gpt", "model": "gpt-small"}
    assert sample(telemetry, "taskloom_agent_llm_cost_usd_total", **labels) is None
    assert sample(telemetry, "taskloom_agent_llm_unpriced_tokens_total", **labels) == 10


async def test_prices_are_per_million_tokens_in_exact_nano_usd() -> None:
    price = Price(input=3, output=15)
    assert price.cost_nano_usd(1_000_000, 0) == 3_000_000_000  # $3
    assert price.cost_nano_usd(1, 1) == 18_000  # $0.000018
