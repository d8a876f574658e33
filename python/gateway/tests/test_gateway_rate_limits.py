"""Rate limits per API key and per tenant: 429 problem+json with Retry-After, per process
without Redis and shared by every gateway process through a real redis-server with it; and
the cache of verified keys, which bounds how long a revoked key keeps working."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import httpx
from fastapi.testclient import TestClient

from taskloom.gateway.auth import Caller, KeyCache
from taskloom.testing.fake_orchestrator import FakeOrchestrator
from taskloom.testing.servers import gateway_process, serve_redis

MakeClient = Callable[..., TestClient]
# Limits per minute: a test makes its few requests well within one window.
KEYS = "ka=acme,kb=acme,kc=globex"


def _statuses(client: TestClient | httpx.Client, key: str, n: int) -> list[int]:
    return [client.get("/v1/agents", headers={"X-API-Key": key}).status_code for _ in range(n)]


def test_a_key_past_its_rate_gets_429_with_retry_after(make_client: MakeClient) -> None:
    client = make_client(api_keys=KEYS, key_rate_limit="3/minute")
    assert _statuses(client, "ka", 3) == [200, 200, 200]
    refused = client.get("/v1/agents", headers={"X-API-Key": "ka"})
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["reason"] == "RATE_LIMITED"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    # Another key of the same tenant has its own allowance.
    assert _statuses(client, "kb", 3) == [200, 200, 200]


def test_a_tenant_past_its_rate_gets_429_whichever_key_it_uses(make_client: MakeClient) -> None:
    client = make_client(api_keys=KEYS, tenant_rate_limit="4/minute")
    assert _statuses(client, "ka", 2) + _statuses(client, "kb", 2) == [200] * 4
    assert _statuses(client, "ka", 1) == [429]
    assert _statuses(client, "kb", 1) == [429]
    assert _statuses(client, "kc", 2) == [200, 200]  # another tenant


def test_without_limits_nothing_is_refused(make_client: MakeClient) -> None:
    client = make_client(api_keys=KEYS)
    assert set(_statuses(client, "ka", 20)) == {200}


def test_two_gateway_processes_share_the_limits_through_redis(
    fake_orchestrator: tuple[FakeOrchestrator, str],
) -> None:
    env = {
        "TASKLOOM_ORCHESTRATOR_ADDR": fake_orchestrator[1],
        "TASKLOOM_API_KEYS": KEYS,
        "TASKLOOM_KEY_RATE_LIMIT": "4/minute",
    }
    with serve_redis() as redis_url:
        env["TASKLOOM_REDIS_URL"] = redis_url
        with _two_gateways(env) as (g1, g2):
            assert _statuses(g1, "ka", 2) + _statuses(g2, "ka", 2) == [200] * 4
            assert _statuses(g1, "ka", 1) == [429]
            assert _statuses(g2, "ka", 1) == [429]
    # Without Redis each process counts alone: the same traffic passes.
    del env["TASKLOOM_REDIS_URL"]
    with _two_gateways(env) as (g1, g2):
        assert _statuses(g1, "ka", 3) + _statuses(g2, "ka", 3) == [200] * 6


@contextlib.contextmanager
def _two_gateways(env: dict[str, str]) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    with (
        gateway_process(env) as one,
        gateway_process(env) as two,
        httpx.Client(base_url=one, timeout=20) as g1,
        httpx.Client(base_url=two, timeout=20) as g2,
    ):
        yield g1, g2


def test_a_verified_key_is_trusted_for_the_cache_time_then_asked_again() -> None:
    now = [0.0]
    cache = KeyCache(ttl=10.0, clock=lambda: now[0])
    cache.put("digest", Caller("acme"))
    now[0] = 9.9
    assert cache.get("digest") == (True, Caller("acme"))
    now[0] = 10.0
    assert cache.get("digest") == (False, None)  # a revoked key stops here at the latest
    cache.put("refused", None)
    assert cache.get("refused") == (True, None)
    assert KeyCache(ttl=0).get("digest") == (False, None)


def test_a_key_stored_at_the_orchestrator_is_verified_there(
    make_client: MakeClient, fake: FakeOrchestrator
) -> None:
    _, secret = fake.create_key("acme")
    client = make_client(orchestrator_token="service-token-0123456789", key_cache_seconds=0)
    created = client.post("/v1/tasks", json={"agent": "echo"}, headers={"X-API-Key": secret})
    assert created.status_code == 202 and created.json()["tenant"] == "acme"
    assert fake.last_metadata["authorization"] == "Bearer service-token-0123456789"
    refused = client.get("/v1/agents", headers={"X-API-Key": "tlk_unknown"})
    assert refused.status_code == 401 and refused.json()["reason"] == "UNAUTHENTICATED"
