"""The rate limits, one suite over both backends: this process's and Redis's (a real
redis-server), which every worker shares. Periods are long (minutes), so nothing here
depends on how fast the machine is."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from taskloom.agents.endpoints import RateLimit
from taskloom.agents.limits import (
    SLOTS_FULL,
    Limiter,
    LocalLimiter,
    Permit,
    RateLimited,
    RedisLimiter,
    Scope,
    acquire,
)

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture(params=["local", "redis"])
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[Limiter]:
    made: Limiter
    if request.param == "redis":
        made = RedisLimiter(request.getfixturevalue("redis_url"), lease_s=60)
    else:
        made = LocalLimiter()
    yield made
    await made.aclose()


async def grant(
    limiter: Limiter, scopes: list[Scope], tokens: int = 0, max_wait_s: float = 0
) -> tuple[float, Permit]:
    """The wait of a granted call; a refused one's wait, negated (-inf: slots full)."""
    permit = Permit(scopes, tokens)
    granted, wait = await limiter.try_acquire(scopes, tokens, permit, max_wait_s)
    if granted:
        return wait, permit
    return (float("-inf") if wait == SLOTS_FULL else -wait), permit


async def test_requests_per_second_with_burst(limiter: Limiter) -> None:
    scopes = [Scope("ep", RateLimit(requests_per_second=0.01, burst=2))]  # one per 100 s
    assert (await grant(limiter, scopes))[0] == 0
    assert (await grant(limiter, scopes))[0] == 0  # the burst
    wait, _ = await grant(limiter, scopes)
    assert -100 <= wait < -90  # refused: its turn is ~100 s away, past max_wait_s


async def test_waiting_calls_reserve_their_turns_one_after_another(limiter: Limiter) -> None:
    scopes = [Scope("ep", RateLimit(requests_per_second=0.01))]
    assert (await grant(limiter, scopes, max_wait_s=1000))[0] == 0
    second, _ = await grant(limiter, scopes, max_wait_s=1000)
    third, _ = await grant(limiter, scopes, max_wait_s=1000)
    assert 90 < second <= 100 and 190 < third <= 200


async def test_tokens_per_minute_are_charged_by_estimate_and_corrected_by_usage(
    limiter: Limiter,
) -> None:
    scopes = [Scope("ep", RateLimit(tokens_per_minute=1000))]
    wait, permit = await grant(limiter, scopes, tokens=900)
    assert wait == 0
    wait, _ = await grant(limiter, scopes, tokens=900)
    assert wait < -40  # 800 tokens over the minute's budget: about 48 s away
    await limiter.release(permit, actual_tokens=100)  # the call used far less
    assert (await grant(limiter, scopes, tokens=900))[0] == 0


async def test_concurrent_requests_hold_a_slot_until_released(limiter: Limiter) -> None:
    scopes = [Scope("ep", RateLimit(concurrent=2))]
    _, first = await grant(limiter, scopes)
    await grant(limiter, scopes)
    assert (await grant(limiter, scopes))[0] == float("-inf")  # full: poll
    await limiter.release(first, None)
    assert (await grant(limiter, scopes))[0] == 0


async def test_a_tenant_scope_limits_that_tenant_only(limiter: Limiter) -> None:
    per_tenant = RateLimit(requests_per_second=0.01)
    endpoint = Scope("ep", RateLimit(requests_per_second=1000, burst=100))
    a = [endpoint, Scope("ep/tenant/a", per_tenant)]
    b = [endpoint, Scope("ep/tenant/b", per_tenant)]
    assert (await grant(limiter, a))[0] == 0
    assert (await grant(limiter, a))[0] < -90
    assert (await grant(limiter, b))[0] == 0


async def test_a_refused_call_takes_nothing(limiter: Limiter) -> None:
    slow = Scope("ep/agent/x", RateLimit(requests_per_second=0.01))
    shared = Scope("ep", RateLimit(requests_per_second=0.01, burst=2))
    assert (await grant(limiter, [shared, slow]))[0] == 0
    assert (await grant(limiter, [shared, slow]))[0] < 0  # refused by the agent's scope
    assert (await grant(limiter, [shared]))[0] == 0  # so the shared burst is still there


async def test_acquire_fails_as_retryable_when_the_wait_is_past_max_wait(limiter: Limiter) -> None:
    scopes = [Scope("ep", RateLimit(requests_per_second=0.01))]
    await acquire(limiter, scopes, 0, max_wait_s=1)
    with pytest.raises(RateLimited, match="rate limit of ep reached") as err:
        await acquire(limiter, scopes, 0, max_wait_s=1)
    assert err.value.retry_after_s > 90
