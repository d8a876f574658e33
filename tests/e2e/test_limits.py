"""The priority rule, the declared limits and idempotency conflicts through REST on the real
stack (the gRPC side is tested in services/orchestrator-go/internal/api)."""

from __future__ import annotations

import uuid

import httpx

PROBLEM = "application/problem+json"


def test_priority_absent_is_5_and_0_is_the_lowest(gateway: str) -> None:
    with httpx.Client(base_url=gateway) as client:
        for body, want in (({}, 5), ({"priority": 0}, 0), ({"priority": 9}, 9)):
            resp = client.post("/v1/tasks", json={"agent": "assistant", "input": "p", **body})
            assert resp.status_code == 202, resp.text
            assert resp.json()["priority"] == want
        resp = client.post("/v1/tasks", json={"agent": "assistant", "priority": 10})
        assert resp.status_code == 422
        assert resp.json()["errors"][0]["field"] == "priority"
        wf = client.post(
            "/v1/workflows",
            json={
                "mode": "parallel",
                "steps": [
                    {"id": "absent", "agent": "assistant", "input": "a"},
                    {"id": "zero", "agent": "assistant", "input": "z", "priority": 0},
                ],
            },
        )
        assert wf.status_code == 202, wf.text
        steps = {s["id"]: s for s in wf.json()["spec"]["steps"]}
        assert (steps["absent"]["priority"], steps["zero"]["priority"]) == (5, 0)


def test_a_reused_idempotency_key_with_another_body_is_409(gateway: str) -> None:
    key = {"Idempotency-Key": f"e2e-{uuid.uuid4()}"}
    with httpx.Client(base_url=gateway) as client:
        first = client.post("/v1/tasks", json={"agent": "assistant", "input": "a"}, headers=key)
        again = client.post("/v1/tasks", json={"agent": "assistant", "input": "a"}, headers=key)
        other = client.post("/v1/tasks", json={"agent": "assistant", "input": "b"}, headers=key)
        assert (first.status_code, again.status_code) == (202, 200)
        assert again.json()["id"] == first.json()["id"]
        assert other.status_code == 409, other.text
        assert other.headers["content-type"].startswith(PROBLEM)
        assert other.json()["reason"] == "IDEMPOTENCY_CONFLICT"
        assert other.json()["existing_id"] == first.json()["id"]

        wf_key = {"Idempotency-Key": f"e2e-wf-{uuid.uuid4()}"}
        spec = {"steps": [{"id": "a", "agent": "assistant", "input": "x"}]}
        assert client.post("/v1/workflows", json=spec, headers=wf_key).status_code == 202
        spec["steps"][0]["input"] = "y"
        conflict = client.post("/v1/workflows", json=spec, headers=wf_key)
        assert conflict.status_code == 409
        assert conflict.json()["reason"] == "IDEMPOTENCY_CONFLICT"


def test_the_orchestrator_refuses_what_the_gateway_lets_through(gateway: str) -> None:
    # A multi-byte agent name within the gateway's character count but over the proto's
    # byte bound: the orchestrator's 422 names the REST field.
    with httpx.Client(base_url=gateway) as client:
        resp = client.post("/v1/tasks", json={"agent": "é" * 100})
        assert resp.status_code == 422, resp.text
        assert resp.json()["errors"][0]["field"] == "agent"


def test_huge_values_long_ids_and_large_bodies_get_clear_errors(gateway: str) -> None:
    with httpx.Client(base_url=gateway, timeout=30) as client:
        resp = client.post("/v1/tasks", json={"agent": "assistant", "timeout_seconds": 1e300})
        assert resp.status_code == 422
        assert "86400" in resp.json()["errors"][0]["message"]
        long_id = "x" * 7000
        for method, path in (
            ("GET", f"/v1/tasks/{long_id}"),
            ("POST", f"/v1/tasks/{long_id}/cancel"),
        ):
            resp = client.request(method, path)
            assert resp.status_code == 422, resp.text
            assert len(resp.text) < 1000
        big = client.post("/v1/tasks", json={"agent": "assistant", "input": "x" * (5 << 20)})
        assert big.status_code == 413
        assert big.json()["reason"] == "REQUEST_TOO_LARGE"
