"""Rate limits of LLM calls: requests per second, tokens per minute and concurrent requests,
per endpoint and optionally per tenant and per agent on it.

Rates are GCRA (the generic cell rate algorithm: one "theoretical arrival time" per key);
tokens per minute are GCRA with a cost per call, a minute's worth of burst, charged with an
estimate before the call and corrected by the reported usage after it. With a Redis URL
every check is one Lua script (one round trip, atomic over every scope and kind) and the
limits hold for every worker on every machine; without it they hold per process.

A limited call reserves its turn and waits for it, up to `max_wait_s`: one check per call
however many wait, so the rate holds without a herd retrying at every slot. When the wait
needed is longer, it takes nothing and fails at once with `RateLimited` (retryable, with
the time to wait). A full concurrency limit is polled until a slot frees or time is up.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

from taskloom.agents.endpoints import RateLimit

# How often a call waiting for a concurrency slot looks again (no wake-up across machines).
_SLOT_POLL_S = 0.005
# A shared concurrency slot of a worker that died frees itself after this long past the
# call's own timeout.
_SLOT_LEASE_MARGIN_S = 30.0
_KEY_PREFIX = "taskloom:llm-limits:"

log = structlog.get_logger(__name__)


class LimiterUnavailable(Exception):
    """The shared limits cannot be checked (Redis is down): the call does not go, as
    going would break the limits every worker keeps; it may be retried."""


class RateLimited(Exception):
    """The call would have to wait longer than allowed; try again in `retry_after_s`."""

    def __init__(self, scope: str, retry_after_s: float) -> None:
        super().__init__(
            f"rate limit of {scope} reached; retry in {retry_after_s:.3f}s"
            if retry_after_s > 0
            else f"rate limit of {scope} reached"
        )
        self.scope = scope
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class Scope:
    """One set of limits and the key it is counted under (`endpoint`,
    `endpoint/tenant/NAME`, `endpoint/agent/NAME`)."""

    key: str
    limit: RateLimit


@dataclass
class Permit:
    """A granted call: holds its concurrency slots until `release`."""

    scopes: Sequence[Scope]
    tokens: int
    lease: str = field(default_factory=lambda: uuid.uuid4().hex)


# What try_acquire returns when a concurrency slot is full (poll again).
SLOTS_FULL = -1.0


class Limiter(Protocol):
    async def try_acquire(
        self, scopes: Sequence[Scope], tokens: int, permit: Permit, max_wait_s: float
    ) -> tuple[bool, float]:
        """(True, wait): the call's turn is reserved; it may go after `wait` seconds.
        (False, wait): nothing was taken; the turn is `wait` away (past `max_wait_s`), or
        `SLOTS_FULL` when a concurrency limit is full."""
        ...

    async def release(self, permit: Permit, actual_tokens: int | None) -> None:
        """Free the permit's slots and correct its token estimate by the actual count."""
        ...

    async def aclose(self) -> None: ...


async def acquire(
    limiter: Limiter, scopes: Sequence[Scope], tokens: int, max_wait_s: float
) -> Permit:
    """Wait (bounded) until the call may go; raises RateLimited when it cannot in time."""
    permit = Permit(scopes, tokens)
    if not scopes:
        return permit
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_wait_s
    while True:
        remaining = deadline - loop.time()
        granted, wait = await limiter.try_acquire(scopes, tokens, permit, max(remaining, 0.0))
        if granted:
            if wait > 0:
                try:
                    await asyncio.sleep(wait)
                except BaseException:
                    await limiter.release(permit, None)
                    raise
            return permit
        if wait != SLOTS_FULL or remaining < _SLOT_POLL_S:
            raise RateLimited(scopes[0].key.split("/")[0], max(wait, 0.0))
        await asyncio.sleep(_SLOT_POLL_S)


def _rate_period(limit: RateLimit) -> float:
    return 1.0 / limit.requests_per_second if limit.requests_per_second else 0.0


def _token_period(limit: RateLimit) -> float:
    return 60.0 / limit.tokens_per_minute if limit.tokens_per_minute else 0.0


class LocalLimiter:
    """The limits of this process only."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tat: dict[str, float] = {}
        self._running: dict[str, int] = {}

    async def try_acquire(
        self, scopes: Sequence[Scope], tokens: int, permit: Permit, max_wait_s: float
    ) -> tuple[bool, float]:
        now = self._clock()
        wait = 0.0
        updates: list[tuple[str, float]] = []
        for scope in scopes:
            limit = scope.limit
            if limit.concurrent and self._running.get(scope.key, 0) >= limit.concurrent:
                return False, SLOTS_FULL
            if period := _rate_period(limit):
                key = scope.key + "#r"
                tat = max(self._tat.get(key, now), now)
                wait = max(wait, tat - period * (limit.burst - 1) - now)
                updates.append((key, tat + period))
            if period := _token_period(limit):
                key = scope.key + "#t"
                cost = min(tokens, limit.tokens_per_minute)
                new_tat = max(self._tat.get(key, now), now) + cost * period
                wait = max(wait, new_tat - 60.0 - now)
                updates.append((key, new_tat))
        if wait > max_wait_s:
            return False, wait
        self._tat.update(updates)
        for scope in scopes:
            if scope.limit.concurrent:
                self._running[scope.key] = self._running.get(scope.key, 0) + 1
        return True, wait

    async def release(self, permit: Permit, actual_tokens: int | None) -> None:
        for scope in permit.scopes:
            if scope.limit.concurrent:
                self._running[scope.key] = max(0, self._running.get(scope.key, 0) - 1)
            period = _token_period(scope.limit)
            if period and actual_tokens is not None:
                key = scope.key + "#t"
                estimate = min(permit.tokens, scope.limit.tokens_per_minute)
                if key in self._tat:
                    self._tat[key] += (actual_tokens - estimate) * period

    async def aclose(self) -> None:
        return None


# KEYS: per scope, its rate key, token key and concurrency key.
# ARGV: lease id, lease seconds, tokens, max wait, then per scope: rate period, rate
# burst, token period, token cap, concurrency limit.
# Returns {granted (1|0), wait in microseconds}; {0, -1}: a concurrency slot is full.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local lease, lease_s, tokens = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local max_wait = tonumber(ARGV[4])
local n = #KEYS / 3
local wait = 0
local updates = {}
for i = 0, n - 1 do
  local a = 5 + i * 5
  local rate_p, burst = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  local tok_p, cap, conc = tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  if conc > 0 then
    local ckey = KEYS[i * 3 + 3]
    redis.call('ZREMRANGEBYSCORE', ckey, '-inf', now)
    if redis.call('ZCARD', ckey) >= conc then return {0, -1} end
  end
  if rate_p > 0 then
    local tat = math.max(tonumber(redis.call('GET', KEYS[i * 3 + 1]) or now), now)
    wait = math.max(wait, tat - rate_p * (burst - 1) - now)
    updates[#updates + 1] = {KEYS[i * 3 + 1], tat + rate_p}
  end
  if tok_p > 0 then
    local cost = math.min(tokens, cap)
    local tat = math.max(tonumber(redis.call('GET', KEYS[i * 3 + 2]) or now), now) + cost * tok_p
    wait = math.max(wait, tat - 60 - now)
    updates[#updates + 1] = {KEYS[i * 3 + 2], tat}
  end
end
if wait > max_wait then return {0, math.ceil(wait * 1e6)} end
for _, u in ipairs(updates) do
  redis.call('SET', u[1], string.format('%.6f', u[2]), 'PX', math.ceil((u[2] - now + 60) * 1000))
end
for i = 0, n - 1 do
  if tonumber(ARGV[5 + i * 5 + 4]) > 0 then
    local ckey = KEYS[i * 3 + 3]
    redis.call('ZADD', ckey, now + lease_s, lease)
    redis.call('PEXPIRE', ckey, math.ceil(lease_s * 1000))
  end
end
return {1, math.max(0, math.floor(wait * 1e6))}
"""

# KEYS: per scope, its token key and concurrency key. ARGV: lease id, then per scope the
# correction of its token key in seconds (0: none).
_RELEASE = """
for i = 0, #KEYS / 2 - 1 do
  redis.call('ZREM', KEYS[i * 2 + 2], ARGV[1])
  local delta = tonumber(ARGV[2 + i])
  if delta ~= 0 and redis.call('EXISTS', KEYS[i * 2 + 1]) == 1 then
    redis.call('INCRBYFLOAT', KEYS[i * 2 + 1], string.format('%.6f', delta))
  end
end
return 0
"""


class RedisLimiter:
    """The limits of every worker sharing one Redis."""

    def __init__(self, url: str, *, lease_s: float = 600.0) -> None:
        self._redis = aioredis.Redis.from_url(url)
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._release = self._redis.register_script(_RELEASE)
        self._lease_s = lease_s + _SLOT_LEASE_MARGIN_S

    async def ping(self) -> bool:
        return bool(await self._redis.ping())

    async def try_acquire(
        self, scopes: Sequence[Scope], tokens: int, permit: Permit, max_wait_s: float
    ) -> tuple[bool, float]:
        keys: list[str] = []
        args: list[str | float | int] = [permit.lease, self._lease_s, tokens, max_wait_s]
        for scope in scopes:
            base = _KEY_PREFIX + scope.key
            keys += [base + "#r", base + "#t", base + "#c"]
            limit = scope.limit
            args += [
                _rate_period(limit),
                limit.burst,
                _token_period(limit),
                limit.tokens_per_minute,
                limit.concurrent,
            ]
        try:
            granted, waited = await self._acquire(keys=keys, args=args)
        except (RedisError, OSError) as err:
            raise LimiterUnavailable(f"the shared rate limits are unavailable: {err}") from err
        return bool(granted), SLOTS_FULL if int(waited) < 0 else int(waited) / 1e6

    async def release(self, permit: Permit, actual_tokens: int | None) -> None:
        if not any(s.limit.concurrent or s.limit.tokens_per_minute for s in permit.scopes):
            return  # nothing held, nothing to correct: no second round trip
        keys: list[str] = []
        args: list[str | float] = [permit.lease]
        for scope in permit.scopes:
            base = _KEY_PREFIX + scope.key
            keys += [base + "#t", base + "#c"]
            period = _token_period(scope.limit)
            estimate = min(permit.tokens, scope.limit.tokens_per_minute)
            if period and actual_tokens is not None:
                args.append((actual_tokens - estimate) * period)
            else:
                args.append(0)
        try:
            await self._release(keys=keys, args=args)
        except (RedisError, OSError) as err:
            # The call is over either way; its slot frees itself when its lease expires.
            log.warning("releasing a shared rate limit slot failed", error=str(err))

    async def aclose(self) -> None:
        await self._redis.aclose()
