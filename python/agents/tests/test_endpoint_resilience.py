"""Endpoints in front of real local servers speaking the OpenAI and Anthropic APIs: retries
that honour Retry-After, the circuit breaker (opening on a storm of 500s, failing fast,
recovering through half-open probes), fallback to a second endpoint, the total timeout of
a hanging call, and rate limits that wait, bounded, then fail as retryable."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from pydantic import SecretStr

from taskloom.agents import cost
from taskloom.agents.breaker import BreakerState
from taskloom.agents.endpoints import parse_endpoints
from taskloom.agents.providers import GenerationParams, ProviderError, text_of
from taskloom.agents.providers.registry import LegacySettings, LLMEndpoints, build_llm_endpoints
from taskloom.sdk.localstack import free_port

pytestmark = pytest.mark.asyncio

PARAMS = GenerationParams(temperature=0.1, max_tokens=64)
MESSAGES = [{"role": "user", "content": "Hi"}]
FAST_RETRY = {"max_retries": 3, "initial_backoff_s": 0.001, "max_backoff_s": 5}
LEGACY = LegacySettings(
    openai_base_url="http://127.0.0.1:9/v1",
    openai_api_key=SecretStr(""),
    llm_timeout_s=10,
    llm_max_retries=0,
    sim_latency_s=0,
    sim_tokens_per_second=0,
)


def endpoints(
    telemetry: Any, config: dict[str, Any], environ: dict[str, str] | None = None
) -> LLMEndpoints:
    return build_llm_endpoints(
        parse_endpoints(config), [], environ or {"KEY": "sk-test"}, LEGACY, telemetry
    )


def failing_anthropic(telemetry: Any, fake: Any, breaker_failures: int) -> LLMEndpoints:
    """Endpoint `claude` on a fake Anthropic server that answers every call with a 500,
    no retries, its breaker opening after `breaker_failures` failures."""
    fake.respond = lambda body: 500
    config = {
        "kind": "anthropic",
        "base_url": fake.base_url,
        "api_key_env": "KEY",
        "retry": {"max_retries": 0},
        "breaker": {"failures": breaker_failures, "cooldown_s": 60},
    }
    return endpoints(telemetry, {"claude": config})


async def call(llm: LLMEndpoints, name: str, model: str = "m") -> str:
    events = [e async for e in llm.providers[name].stream(MESSAGES, model, PARAMS)]
    return text_of(events)


def sample(telemetry: Any, name: str, **labels: str) -> float:
    return telemetry.registry.get_sample_value(name, labels) or 0.0


async def test_a_429_with_retry_after_is_retried_after_that_long(telemetry, fake_openai) -> None:
    answers: list[int | dict[str, Any]] = [429, {"text": "Hello world"}]
    fake_openai.respond = lambda body: answers.pop(0)
    fake_openai.retry_after = "0.3"
    llm = endpoints(
        telemetry,
        {"a": {"kind": "openai", "base_url": fake_openai.base_url, "retry": FAST_RETRY}},
    )
    try:
        started = time.monotonic()
        assert await call(llm, "a") == "Hello world"
        waited = time.monotonic() - started
    finally:
        await llm.aclose()
    assert len(fake_openai.requests) == 2
    assert waited >= 0.3  # the server's Retry-After, not the 1 ms backoff
    assert sample(telemetry, "taskloom_agent_llm_calls_total", endpoint="a", outcome="ok") == 1


async def test_a_retry_after_past_the_backoff_cap_fails_at_once_as_retryable(
    telemetry, fake_openai
) -> None:
    fake_openai.respond = lambda body: 429
    fake_openai.retry_after = "60"
    llm = endpoints(
        telemetry,
        {"a": {"kind": "openai", "base_url": fake_openai.base_url, "retry": FAST_RETRY}},
    )
    try:
        with pytest.raises(ProviderError) as err:
            await call(llm, "a")
    finally:
        await llm.aclose()
    assert err.value.retryable and err.value.retry_after_s == 60
    assert len(fake_openai.requests) == 1


async def test_a_storm_of_500s_opens_the_breaker_which_then_fails_fast(
    telemetry, fake_anthropic
) -> None:
    llm = failing_anthropic(telemetry, fake_anthropic, breaker_failures=3)
    try:
        for _ in range(3):
            with pytest.raises(ProviderError, match="HTTP 500"):
                await call(llm, "claude")
        assert llm.providers["claude"].breaker.state == BreakerState.OPEN
        with pytest.raises(ProviderError, match="circuit breaker open") as err:
            await call(llm, "claude")
    finally:
        await llm.aclose()
    assert err.value.retryable is True and err.value.retry_after_s > 0
    assert len(fake_anthropic.requests) == 3  # the open breaker sent nothing
    assert sample(telemetry, "taskloom_agent_llm_breaker_state", endpoint="claude") == 2
    assert llm.states()["claude"]["breaker"] == "open"


async def test_only_attempts_that_reached_the_provider_count_as_llm_requests(
    telemetry, fake_anthropic
) -> None:
    """Each failed attempt is a request (outcome=error, with its latency); the calls the open
    breaker refuses never reached the provider and are none."""
    llm = failing_anthropic(telemetry, fake_anthropic, breaker_failures=2)
    try:
        with cost.task_usage("t", "writer"):
            for _ in range(2):
                with pytest.raises(ProviderError, match="HTTP 500"):
                    await call(llm, "claude")
            for _ in range(3):
                with pytest.raises(ProviderError, match="circuit breaker open"):
                    await call(llm, "claude")
    finally:
        await llm.aclose()
    agent = {"agent": "writer", "model": "m"}
    assert sample(telemetry, "taskloom_agent_llm_requests_total", **agent, outcome="error") == 2
    assert sample(telemetry, "taskloom_agent_llm_request_duration_seconds_count", **agent) == 2


async def test_a_rate_limited_call_is_no_llm_request_and_a_successful_one_is(telemetry) -> None:
    config = {"kind": "simulated", "limits": {"requests_per_second": 1, "max_wait_s": 0}}
    llm = endpoints(telemetry, {"sim": config})
    try:
        with cost.task_usage("t", "writer"):
            await call(llm, "sim")
            with pytest.raises(ProviderError, match="rate limit of sim reached"):
                await call(llm, "sim")
    finally:
        await llm.aclose()
    agent = {"agent": "writer", "model": "m"}
    assert sample(telemetry, "taskloom_agent_llm_requests_total", **agent, outcome="ok") == 1
    assert sample(telemetry, "taskloom_agent_llm_requests_total", **agent, outcome="error") == 0
    assert sample(telemetry, "taskloom_agent_llm_request_duration_seconds_count", **agent) == 1


async def test_retries_stop_when_the_breaker_opens_mid_call(telemetry, fake_openai) -> None:
    fake_openai.respond = lambda body: 503
    config = {
        "kind": "openai",
        "base_url": fake_openai.base_url,
        "retry": FAST_RETRY | {"max_retries": 10},
        "breaker": {"failures": 2, "cooldown_s": 60},
    }
    llm = endpoints(telemetry, {"a": config})
    try:
        with pytest.raises(ProviderError, match="circuit breaker open"):
            await call(llm, "a")
    finally:
        await llm.aclose()
    assert len(fake_openai.requests) == 2


async def test_half_open_probe_closes_the_breaker_on_success(telemetry, fake_openai) -> None:
    failing = True
    fake_openai.respond = lambda body: 500 if failing else {"text": "Hello world"}
    config = {
        "kind": "openai",
        "base_url": fake_openai.base_url,
        "retry": {"max_retries": 0},
        "breaker": {"failures": 2, "cooldown_s": 0.2},
    }
    llm = endpoints(telemetry, {"a": config})
    breaker = llm.providers["a"].breaker
    try:
        for _ in range(2):
            with pytest.raises(ProviderError):
                await call(llm, "a")
        assert breaker.state == BreakerState.OPEN
        await asyncio.sleep(0.25)  # past the cool-down
        failing = False
        assert await call(llm, "a") == "Hello world"  # the probe
        assert breaker.state == BreakerState.CLOSED
        assert await call(llm, "a") == "Hello world"
    finally:
        await llm.aclose()
    assert sample(telemetry, "taskloom_agent_llm_breaker_state", endpoint="a") == 0


async def test_a_failed_probe_opens_the_breaker_again(telemetry, fake_openai) -> None:
    fake_openai.respond = lambda body: 500
    config = {
        "kind": "openai",
        "base_url": fake_openai.base_url,
        "retry": {"max_retries": 0},
        "breaker": {"failures": 1, "cooldown_s": 0.1},
    }
    llm = endpoints(telemetry, {"a": config})
    try:
        with pytest.raises(ProviderError, match="HTTP 500"):
            await call(llm, "a")
        await asyncio.sleep(0.15)
        with pytest.raises(ProviderError, match="HTTP 500"):
            await call(llm, "a")  # the probe fails
        assert llm.providers["a"].breaker.state == BreakerState.OPEN
        with pytest.raises(ProviderError, match="circuit breaker open"):
            await call(llm, "a")
    finally:
        await llm.aclose()
    assert len(fake_openai.requests) == 2


async def test_an_open_breaker_sends_calls_to_the_fallback_endpoint_and_model(
    telemetry, fake_openai, fake_anthropic
) -> None:
    fake_openai.respond = lambda body: 500
    config = {
        "primary": {
            "kind": "openai",
            "base_url": fake_openai.base_url,
            "retry": {"max_retries": 0},
            "breaker": {"failures": 1, "cooldown_s": 60},
            "fallback": {"endpoint": "backup", "model": "claude-small"},
            "prices": {"m": {"input": 1, "output": 1}},
        },
        "backup": {
            "kind": "anthropic",
            "base_url": fake_anthropic.base_url,
            "api_key_env": "KEY",
            "prices": {"claude-small": {"input": 3, "output": 15}},
        },
    }
    llm = endpoints(telemetry, config)
    try:
        with cost.task_usage("acme", "writer") as ledger:
            with pytest.raises(ProviderError, match="HTTP 500"):
                await call(llm, "primary")
            assert await call(llm, "primary") == "Hello world"
    finally:
        await llm.aclose()
    assert fake_anthropic.requests[0]["model"] == "claude-small"
    assert len(fake_openai.requests) == 1
    assert (
        sample(telemetry, "taskloom_agent_llm_calls_total", endpoint="primary", outcome="fallback")
        == 1
    )
    # The fallback's usage is counted where it was spent, at its price.
    line = ledger.lines[("backup", "claude-small")]
    assert (line.prompt_tokens, line.completion_tokens) == (13, 5)
    assert line.cost_nano_usd == 13 * 3000 + 5 * 15000


async def test_a_hanging_call_ends_at_the_total_timeout_and_is_retried(telemetry) -> None:
    config = {
        "kind": "simulated",
        "connection": {"total_timeout_s": 0.2},
        "retry": FAST_RETRY | {"max_retries": 1},
        "simulated": {"failures": {"rate_hang": 1.0, "hang_s": 3600}},
    }
    llm = endpoints(telemetry, {"sim": config})
    try:
        started = time.monotonic()
        with pytest.raises(ProviderError, match=r"no answer within 0\.2s") as err:
            await call(llm, "sim")
        took = time.monotonic() - started
    finally:
        await llm.aclose()
    assert err.value.retryable
    assert took < 600  # cut short: two attempts of 0.2 s, not a hang of an hour
    assert sample(telemetry, "taskloom_agent_llm_calls_total", endpoint="sim", outcome="error") == 2


async def test_simulated_429s_and_5xx_are_injected_at_the_configured_rates(telemetry) -> None:
    config = {
        "kind": "simulated",
        "retry": {"max_retries": 0},
        "breaker": {"enabled": False},
        "simulated": {"failures": {"rate_429": 0.3, "rate_5xx": 0.2, "seed": 7}},
    }
    llm = endpoints(telemetry, {"sim": config})
    statuses: list[int | None] = []
    try:
        for _ in range(400):
            try:
                await call(llm, "sim")
                statuses.append(200)
            except ProviderError as err:
                assert err.retryable
                statuses.append(err.status)
                if err.status == 429:
                    assert err.retry_after_s == 1.0
    finally:
        await llm.aclose()
    assert 80 <= statuses.count(429) <= 160  # 30 % of 400, give or take
    assert 40 <= statuses.count(503) <= 120  # 20 %
    assert statuses.count(200) + statuses.count(429) + statuses.count(503) == 400


async def test_the_rate_limit_waits_then_fails_as_retryable_past_max_wait(telemetry) -> None:
    config = {
        "kind": "simulated",
        "limits": {"requests_per_second": 5, "max_wait_s": 0.3},
    }
    llm = endpoints(telemetry, {"sim": config})
    try:
        await call(llm, "sim")
        await call(llm, "sim")  # waits ~0.2 s for its turn
        for _ in range(3):
            await call(llm, "sim")
        # Five at once at 5/s: the later ones would wait 0.4 s and more, past max_wait_s.
        results = await asyncio.gather(
            *(call(llm, "sim") for _ in range(5)), return_exceptions=True
        )
    finally:
        await llm.aclose()
    refused = [r for r in results if isinstance(r, ProviderError)]
    assert refused and all(r.retryable and r.retry_after_s > 0 for r in refused)
    assert "rate limit of sim reached" in str(refused[0])
    assert sample(
        telemetry, "taskloom_agent_llm_calls_total", endpoint="sim", outcome="rate_limited"
    ) == len(refused)


async def test_two_agents_on_two_openai_compatible_servers(
    telemetry, fake_openai, second_openai
) -> None:
    second_openai.respond = lambda body: {"text": "From two"}
    config = {
        "one": {"kind": "openai", "base_url": fake_openai.base_url, "models": {"fast": "m-1"}},
        "two": {"kind": "openai", "base_url": second_openai.base_url, "api_key_env": "KEY"},
    }
    llm = build_llm_endpoints(
        parse_endpoints(config),
        [("writer", "one"), ("critic", "two")],
        {"KEY": "sk-two"},
        LEGACY,
        telemetry,
    )
    try:
        assert await call(llm, "one", model="fast") == "Hello world"
        assert await call(llm, "two") == "From two"
    finally:
        await llm.aclose()
    assert fake_openai.requests[0]["model"] == "m-1"  # the alias resolved
    assert "authorization" not in fake_openai.headers[0]
    assert second_openai.headers[0]["authorization"] == "Bearer sk-two"


async def test_refused_requests_do_not_open_the_breaker(telemetry, fake_openai) -> None:
    fake_openai.respond = lambda body: 400
    config = {
        "kind": "openai",
        "base_url": fake_openai.base_url,
        "breaker": {"failures": 2, "cooldown_s": 60},
    }
    llm = endpoints(telemetry, {"a": config})
    try:
        for _ in range(4):
            with pytest.raises(ProviderError, match="HTTP 400") as err:
                await call(llm, "a")
            assert not err.value.retryable
    finally:
        await llm.aclose()
    assert llm.providers["a"].breaker.state == BreakerState.CLOSED
    assert len(fake_openai.requests) == 4  # and none was retried


async def test_shared_limits_that_cannot_be_checked_fail_the_call_as_retryable(
    telemetry, fake_openai
) -> None:
    config = {
        "kind": "openai",
        "base_url": fake_openai.base_url,
        "limits": {"requests_per_second": 10},
    }
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    llm = build_llm_endpoints(parse_endpoints({"a": config}), [], {}, LEGACY, telemetry, nowhere)
    try:
        with pytest.raises(ProviderError, match="shared rate limits are unavailable") as err:
            await call(llm, "a")
    finally:
        await llm.aclose()
    assert err.value.retryable
    assert fake_openai.requests == []  # the limits could not be kept: nothing was sent
