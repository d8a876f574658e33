"""Session conversations in Redis, shared by the agent worker (which reads a session's
turns before a task and appends the task's turn after it) and the gateway (which shows and
deletes sessions). One Redis list per (tenant, session): JSON messages, oldest first,
trimmed to the newest `max_messages` (a sliding window) and expiring `ttl_s` after the
last write. Redis rather than the orchestrator's store: a session is read and rewritten by
every task that continues it, which Redis lists do in one round trip (RPUSH, LTRIM,
EXPIRE in a MULTI), and it is durable there with `appendonly yes`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

KEY_PREFIX = "taskloom:session:"


class SessionStoreError(Exception):
    """The session store (Redis) could not be reached or answered an error."""


def session_key(tenant: str, session_id: str) -> str:
    """The tenant's length comes first so that no (tenant, id) pair can name another's
    list, whatever characters either holds."""
    return f"{KEY_PREFIX}{len(tenant.encode())}:{tenant}:{session_id}"


@dataclass(frozen=True)
class Session:
    session_id: str
    messages: list[dict[str, Any]]
    ttl_s: float | None  # None: no expiry


class RedisSessions:
    def __init__(self, url: str, *, max_messages: int = 200, ttl_s: float = 7 * 86400) -> None:
        if max_messages < 1:
            raise ValueError("max_messages must be at least 1")
        # Imported here: redis takes a second to import on a loaded machine, and only
        # processes that keep sessions need it.
        import redis.asyncio
        from redis.exceptions import RedisError

        self._redis = redis.asyncio.Redis.from_url(url)
        self._errors = RedisError
        self.max_messages = max_messages
        self.ttl_s = ttl_s

    async def load(self, tenant: str, session_id: str) -> Session | None:
        """The session's messages, oldest first; None when it does not exist (or expired)."""
        key = session_key(tenant, session_id)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.lrange(key, 0, -1)
                pipe.pttl(key)
                raw, ttl_ms = await pipe.execute()
        except self._errors as err:
            raise SessionStoreError(str(err)) from err
        if not raw:
            return None
        messages = [orjson.loads(item) for item in raw]
        return Session(session_id, messages, ttl_ms / 1000 if ttl_ms >= 0 else None)

    async def append(
        self, tenant: str, session_id: str, messages: Sequence[Mapping[str, Any]]
    ) -> None:
        """Adds messages, keeps the newest `max_messages`, and restarts the TTL."""
        if not messages:
            return
        key = session_key(tenant, session_id)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.rpush(key, *(orjson.dumps(dict(m)) for m in messages))
                pipe.ltrim(key, -self.max_messages, -1)
                if self.ttl_s > 0:
                    pipe.pexpire(key, int(self.ttl_s * 1000))
                await pipe.execute()
        except self._errors as err:
            raise SessionStoreError(str(err)) from err

    async def delete(self, tenant: str, session_id: str) -> bool:
        """Forgets the session; False when there was none."""
        try:
            return bool(await self._redis.delete(session_key(tenant, session_id)))
        except self._errors as err:
            raise SessionStoreError(str(err)) from err

    async def ping(self) -> bool:
        return bool(await self._redis.ping())

    async def aclose(self) -> None:
        await self._redis.aclose()
