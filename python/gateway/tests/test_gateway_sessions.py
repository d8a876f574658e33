"""`/v1/sessions/{id}` against a real redis-server: a tenant reads and deletes its own
sessions only; a missing session, or sessions off, is a clear problem."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from taskloom.sdk.sessions import RedisSessions
from taskloom.testing.redis_server import redis_server


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


def _seed(url: str, tenant: str, session_id: str) -> None:
    async def seed() -> None:
        store = RedisSessions(url, ttl_s=3600)
        try:
            await store.append(
                tenant,
                session_id,
                [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
            )
        finally:
            await store.aclose()

    asyncio.run(seed())


def test_a_tenant_reads_and_deletes_only_its_sessions(make_client, redis_url) -> None:  # type: ignore[no-untyped-def]
    _seed(redis_url, "acme", "chat-1")
    client = make_client(sessions_redis_url=redis_url, api_keys="ka=acme,kg=globex")
    acme, globex = {"X-API-Key": "ka"}, {"X-API-Key": "kg"}

    got = client.get("/v1/sessions/chat-1", headers=acme)
    assert got.status_code == 200, got.text
    body = got.json()
    assert [m["content"] for m in body["messages"]] == ["hi", "hello"]
    assert 0 < body["expires_in_seconds"] <= 3600

    for method in (client.get, client.delete):
        other = method("/v1/sessions/chat-1", headers=globex)
        assert other.status_code == 404
        assert other.headers["content-type"].startswith("application/problem+json")
        assert other.json()["reason"] == "SESSION_NOT_FOUND"

    assert client.delete("/v1/sessions/chat-1", headers=acme).status_code == 204
    assert client.get("/v1/sessions/chat-1", headers=acme).status_code == 404


def test_sessions_off_and_bad_ids_are_clear_problems(make_client, redis_url) -> None:  # type: ignore[no-untyped-def]
    off = make_client().get("/v1/sessions/s")
    assert off.status_code == 503 and "sessions_redis_url" in off.json()["detail"]
    client = make_client(sessions_redis_url=redis_url)
    too_long = client.get("/v1/sessions/" + "x" * 129)
    assert too_long.status_code == 422
    assert "session_id" in too_long.text
