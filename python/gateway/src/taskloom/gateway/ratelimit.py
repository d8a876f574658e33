"""Request rate limits per API key and per tenant, answered with 429 and `Retry-After`.

The counting is the `limits` library's moving window (exact: no burst at window edges). With
`redis_url` every gateway process counts in one Redis (each check one atomic Lua script), so
a limit holds for the whole fleet; without it each process counts alone, so N processes let
through up to N times the rate.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from taskloom.gateway.auth import Caller
from taskloom.gateway.config import Settings
from taskloom.gateway.errors import ProblemError

KEY_PREFIX = "taskloom-gateway"


class RateLimits:
    def __init__(self, settings: Settings) -> None:
        self.per_key: RateLimitItem | None = (
            parse(settings.key_rate_limit) if settings.key_rate_limit else None
        )
        self.per_tenant: RateLimitItem | None = (
            parse(settings.tenant_rate_limit) if settings.tenant_rate_limit else None
        )
        self.storage: Storage | None = None
        if self.per_key or self.per_tenant:
            self.storage = (
                RedisStorage(
                    f"async+{settings.redis_url}", implementation="redispy", key_prefix=KEY_PREFIX
                )
                if settings.redis_url
                else MemoryStorage()
            )
        self._limiter = MovingWindowRateLimiter(self.storage) if self.storage else None

    async def check(self, caller: Caller) -> None:
        """Count one request of the caller; a 429 problem when a limit is reached."""
        if self._limiter is None:
            return
        for item, scope, who in (
            (self.per_key, "key", caller.key),
            (self.per_tenant, "tenant", caller.tenant),
        ):
            if item is None or not who:
                continue
            if not await self._limiter.hit(item, scope, who):
                stats = await self._limiter.get_window_stats(item, scope, who)
                retry_after = max(1, math.ceil(stats.reset_time - time.time()))
                raise ProblemError(
                    429,
                    "RATE_LIMITED",
                    f"The {scope}'s rate limit of {item} is reached; retry in {retry_after} s.",
                    headers={"Retry-After": str(retry_after)},
                )
