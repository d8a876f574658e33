"""`GET /v1/usage` in front of a fake orchestrator over real gRPC: the caller's tenant only,
the grouping and the time range passed through, nano-USD shown as USD, bad input named."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from taskloom.testing.fake_orchestrator import FakeOrchestrator
from taskloom.v1 import orchestrator_pb2

MakeClient = Callable[..., TestClient]
KEYS = "key-a=acme,key-b=globex"


def rows() -> list[orchestrator_pb2.UsageRow]:
    return [
        orchestrator_pb2.UsageRow(
            tenant="acme",
            calls=3,
            prompt_tokens=700,
            completion_tokens=300,
            cost_nano_usd=4_750_000,
            unpriced_tokens=12,
            saved_tokens=100,
            saved_cost_nano_usd=250_000,
        ),
    ]


def test_a_tenant_asks_for_its_own_usage_only(
    make_client: MakeClient, fake: FakeOrchestrator
) -> None:
    fake.usage_rows = rows()
    client = make_client(api_keys=KEYS)
    reply = client.get("/v1/usage", headers={"X-API-Key": "key-a"})
    assert reply.status_code == 200
    body = reply.json()
    assert body["group_by"] == "tenant"
    assert body["rows"] == [
        {
            "tenant": "acme",
            "agent": None,
            "endpoint": None,
            "model": None,
            "calls": 3,
            "prompt_tokens": 700,
            "completion_tokens": 300,
            "cost_usd": 0.00475,
            "unpriced_tokens": 12,
            "saved_tokens": 100,
            "saved_cost_usd": 0.00025,
        }
    ]
    assert fake.usage_requests[-1].tenant == "acme"


def test_group_by_and_the_range_reach_the_orchestrator(
    fake_client: TestClient, fake: FakeOrchestrator
) -> None:
    fake.usage_rows = [orchestrator_pb2.UsageRow(endpoint="claude", model="claude-haiku", calls=2)]
    reply = fake_client.get(
        "/v1/usage",
        params={
            "group_by": "model",
            "since": "2026-11-01T00:00:00Z",
            "until": "2026-11-02T00:00:00+00:00",
        },
    )
    assert reply.status_code == 200
    body = reply.json()
    assert body["rows"][0]["endpoint"] == "claude" and body["rows"][0]["model"] == "claude-haiku"
    assert body["since"].startswith("2026-11-01T00:00:00") and body["until"].startswith(
        "2026-11-02"
    )
    request = fake.usage_requests[-1]
    assert request.group_by == orchestrator_pb2.USAGE_GROUP_BY_MODEL
    assert request.tenant == "default"
    assert request.since.ToJsonString() == "2026-11-01T00:00:00Z"


def test_bad_group_by_and_a_reversed_range_are_named(
    fake_client: TestClient, fake: FakeOrchestrator
) -> None:
    bad = fake_client.get("/v1/usage", params={"group_by": "planet"})
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("application/problem+json")
    assert [e["field"] for e in bad.json()["errors"]] == ["group_by"]
    reversed_range = fake_client.get(
        "/v1/usage", params={"since": "2026-11-02T00:00:00Z", "until": "2026-11-01T00:00:00Z"}
    )
    assert reversed_range.status_code == 422
    assert reversed_range.json()["errors"][0]["field"] == "until"
    assert fake.usage_requests == []  # nothing reached the orchestrator


def test_usage_needs_a_key_when_keys_are_configured(make_client: MakeClient) -> None:
    client = make_client(api_keys=KEYS)
    assert client.get("/v1/usage").status_code == 401
