"""Client of the cache service (`CacheService`). A cache is an optimisation, so every
failure is logged and reported as a miss: it never fails the task that asked."""

from __future__ import annotations

import grpc
import structlog
from google.protobuf import duration_pb2

from taskloom.sdk import tracing
from taskloom.v1 import cache_pb2, cache_pb2_grpc

log = structlog.get_logger(__name__)


class CacheClient:
    def __init__(self, addr: str, *, timeout_s: float = 0.5) -> None:
        self._channel = tracing.aio_channel(addr)
        self._stub = cache_pb2_grpc.CacheServiceStub(self._channel)
        self._timeout_s = timeout_s
        self.addr = addr

    async def get(self, namespace: str, key: str) -> bytes | None:
        """The cached value, or None on a miss or when the cache is unreachable."""
        try:
            resp = await self._stub.Get(
                cache_pb2.GetRequest(namespace=namespace, key=key), timeout=self._timeout_s
            )
        except grpc.aio.AioRpcError as err:
            log.warning(
                "cache get failed", addr=self.addr, code=err.code().name, error=err.details()
            )
            return None
        return resp.value if resp.found else None

    async def set(self, namespace: str, key: str, value: bytes, ttl_s: float = 0.0) -> bool:
        """Store a value; False (logged) when the cache is unreachable."""
        request = cache_pb2.SetRequest(namespace=namespace, key=key, value=value)
        if ttl_s > 0:
            request.ttl.CopyFrom(
                duration_pb2.Duration(seconds=int(ttl_s), nanos=int(ttl_s % 1 * 1e9))
            )
        try:
            await self._stub.Set(request, timeout=self._timeout_s)
        except grpc.aio.AioRpcError as err:
            log.warning(
                "cache set failed", addr=self.addr, code=err.code().name, error=err.details()
            )
            return False
        return True

    async def aclose(self) -> None:
        await self._channel.close()
