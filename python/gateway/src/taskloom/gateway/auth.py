"""Who calls the REST API. A caller presents an API key (`Authorization: Bearer <key>` or
`X-API-Key`): one of the gateway's static keys (`api_keys`), or a key the orchestrator
stores hashed, which the orchestrator verifies (`VerifyAPIKey`, with the gateway's service
token). Verified answers, yes or no, are kept `key_cache_seconds`, so a revoked key stops
working within that time. With authentication off every caller is the default tenant.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import grpc
import structlog
from starlette.requests import HTTPConnection

from taskloom.gateway.config import Settings
from taskloom.gateway.errors import ProblemError, problem_from_grpc
from taskloom.gateway.orchestrator import Orchestrator
from taskloom.v1 import orchestrator_pb2

log = structlog.get_logger("taskloom.gateway")

# The most verified keys kept at once; the oldest answers go first.
MAX_CACHED_KEYS = 10_000


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: its tenant, whether it is an admin, and the identity its
    rate limit counts by (a digest of its key; empty when authentication is off)."""

    tenant: str
    admin: bool = False
    key: str = ""

    @property
    def scope(self) -> str:
        """The tenant its reads and actions are confined to: an admin's reach every tenant."""
        return "" if self.admin else self.tenant


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:32]


def presented_key(conn: HTTPConnection) -> str | None:
    auth = conn.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return conn.headers.get("x-api-key") or None


class KeyCache:
    """Answers of the orchestrator about keys (a Caller, or None for a refused key), each
    kept `ttl` seconds; at most MAX_CACHED_KEYS. A dict with expiry times: a library's TTL
    cache would add a dependency for these few lines."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, Caller | None]] = OrderedDict()

    def get(self, digest: str) -> tuple[bool, Caller | None]:
        """(found, answer)."""
        entry = self._entries.get(digest)
        if entry is None:
            return False, None
        if entry[0] <= self._clock():
            del self._entries[digest]
            return False, None
        return True, entry[1]

    def put(self, digest: str, caller: Caller | None) -> None:
        if self.ttl <= 0:
            return
        self._entries[digest] = (self._clock() + self.ttl, caller)
        self._entries.move_to_end(digest)
        while len(self._entries) > MAX_CACHED_KEYS:
            self._entries.popitem(last=False)


class Authenticator:
    def __init__(self, settings: Settings, cache: KeyCache | None = None) -> None:
        self.settings = settings
        self.cache = cache or KeyCache(settings.key_cache_seconds)
        self._static = {key.encode(): tenant for key, tenant in settings.api_keys.items()}

    async def caller(self, conn: HTTPConnection, orchestrator: Orchestrator) -> Caller:
        """The caller of a request, or a 401 problem."""
        if not self.settings.auth_enabled:
            return Caller(self.settings.default_tenant)
        secret = presented_key(conn)
        if secret is None:
            raise _unauthenticated(
                "An API key is required: send `Authorization: Bearer <key>` or `X-API-Key: <key>`."
            )
        for key, tenant in self._static.items():
            if hmac.compare_digest(secret.encode(), key):
                return Caller(tenant, key=_digest(secret))
        caller = await self._verified(secret, orchestrator)
        if caller is None:
            raise _unauthenticated("The API key is not valid.")
        return caller

    async def _verified(self, secret: str, orchestrator: Orchestrator) -> Caller | None:
        digest = _digest(secret)
        found, caller = self.cache.get(digest)
        if found:
            return caller
        try:
            key = await orchestrator.session("").verify_api_key(secret)
        except grpc.aio.AioRpcError as err:
            code = err.code()
            if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
                # The gateway's own token was refused: a configuration error, not the caller's.
                log.error("the orchestrator refused the gateway's token", grpc_code=code.name)
                raise ProblemError(
                    503,
                    "UNAVAILABLE",
                    "The gateway cannot verify API keys now; try again later.",
                    headers={"Retry-After": "1"},
                ) from None
            if code not in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                raise problem_from_grpc(err) from None
            caller = None
        else:
            admin = key.role == orchestrator_pb2.API_KEY_ROLE_ADMIN
            caller = Caller(key.tenant, admin=admin, key=key.id)
        self.cache.put(digest, caller)
        return caller


def _unauthenticated(detail: str) -> ProblemError:
    return ProblemError(401, "UNAUTHENTICATED", detail, headers={"WWW-Authenticate": "Bearer"})
