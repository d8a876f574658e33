"""Tenant isolation and authentication on the real stack: `bin/taskloom-orchestrator` with
authentication on (service, worker and admin tokens), API keys it stores, and the gateway
served by uvicorn with the service token. Tenant B reaches none of tenant A's tasks and
workflows through REST, SSE, WebSocket or gRPC; callers without credentials are refused; the
key lifecycle runs through the CLI's real entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from taskloom.gateway.config import Settings
from taskloom.sdk.keys import KeyAdmin
from taskloom.testing.real_orchestrator import Tokens, serve_real_orchestrator
from taskloom.testing.servers import serve_gateway
from taskloom.v1 import (
    common_pb2,
    orchestrator_pb2,
    orchestrator_pb2_grpc,
    worker_hub_pb2,
    worker_hub_pb2_grpc,
)

BIN = Path(__file__).resolve().parents[3] / "bin"
TOKENS = Tokens()
PROBLEM = "application/problem+json"


@dataclass
class Stack:
    grpc_addr: str
    base_url: str
    keys: dict[str, str]  # secret by name: "a", "b" (tenants acme, globex), "admin"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data = tmp_path_factory.mktemp("orchestrator")
    with serve_real_orchestrator(BIN / "taskloom-orchestrator", data, tokens=TOKENS) as addr:
        with KeyAdmin(addr, TOKENS.admin) as admin:
            keys = {
                "a": admin.create("acme")[1],
                "b": admin.create("globex")[1],
                "admin": admin.create("ops", role="admin")[1],
            }
        settings = Settings(
            orchestrator_addr=addr, orchestrator_token=TOKENS.service, key_cache_seconds=0
        )
        with serve_gateway(settings) as base_url:
            yield Stack(addr, base_url, keys)


def rest(stack: Stack, key: str) -> httpx.Client:
    return httpx.Client(
        base_url=stack.base_url, timeout=20, headers={"Authorization": f"Bearer {key}"}
    )


def test_tenant_b_reaches_none_of_tenant_as_tasks_over_rest(stack: Stack) -> None:
    with rest(stack, stack.keys["a"]) as a, rest(stack, stack.keys["b"]) as b:
        task = a.post("/v1/tasks", json={"agent": "wait"}).json()
        assert task["tenant"] == "acme"
        path = f"/v1/tasks/{task['id']}"
        for resp in (
            b.get(path),
            b.post(f"{path}/cancel"),
            b.get(f"{path}/events"),
        ):
            assert resp.status_code == 404, resp.text
            assert resp.headers["content-type"] == PROBLEM
            assert resp.json()["reason"] == "TASK_NOT_FOUND"
        assert task["id"] not in [t["id"] for t in b.get("/v1/tasks").json()["tasks"]]
        assert b.get("/v1/tasks", params={"tenant": "acme"}).status_code == 403
        # The owner and an admin see it; the task is still running.
        assert a.get(path).json()["status"] in {"queued", "running"}
        with rest(stack, stack.keys["admin"]) as admin:
            assert admin.get(path).status_code == 200
            listed = admin.get("/v1/tasks", params={"tenant": "acme"}).json()["tasks"]
            assert task["id"] in [t["id"] for t in listed]
        assert a.post(f"{path}/cancel").json()["status"] == "cancelled"


def test_tenant_b_reaches_none_of_tenant_as_workflows_over_rest(stack: Stack) -> None:
    spec = {"name": "isolated", "steps": [{"id": "s", "agent": "wait"}]}
    with rest(stack, stack.keys["a"]) as a, rest(stack, stack.keys["b"]) as b:
        wf = a.post("/v1/workflows", json=spec).json()
        path = f"/v1/workflows/{wf['id']}"
        for resp in (b.get(path), b.post(f"{path}/cancel"), b.get(f"{path}/events")):
            assert resp.status_code == 404, resp.text
            assert resp.json()["reason"] == "WORKFLOW_NOT_FOUND"
        assert b.get("/v1/workflows", params={"name": "isolated"}).json()["workflows"] == []
        mine = a.get("/v1/workflows", params={"name": "isolated"}).json()["workflows"]
        assert [w["id"] for w in mine] == [wf["id"]]
        assert a.post(f"{path}/cancel").json()["status"] == "cancelled"


def test_a_websocket_to_another_tenants_task_is_refused_at_the_handshake(stack: Stack) -> None:
    with rest(stack, stack.keys["a"]) as a:
        task = a.post("/v1/tasks", json={"agent": "echo", "input": "x"}).json()
    url = stack.base_url.replace("http", "ws") + f"/v1/tasks/{task['id']}/ws"
    for headers, status in (({"X-API-Key": stack.keys["b"]}, 404), ({}, 401)):
        with pytest.raises(InvalidStatus) as refused:
            connect(url, additional_headers=headers, open_timeout=20)
        response = refused.value.response
        assert response.status_code == status
        assert response.headers["content-type"] == PROBLEM
        assert json.loads(response.body)["status"] == status
    with connect(url, additional_headers={"X-API-Key": stack.keys["a"]}, open_timeout=20) as ws:
        events = [json.loads(ws.recv(timeout=20))["event"] for _ in range(3)]
    assert events[0] == "status" and "done" in events


def test_tenant_b_reaches_none_of_tenant_as_tasks_over_grpc(stack: Stack) -> None:
    with grpc.insecure_channel(stack.grpc_addr) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
        a = (("authorization", f"Bearer {stack.keys['a']}"),)
        b = (("authorization", f"Bearer {stack.keys['b']}"),)
        spec = common_pb2.TaskSpec(agent="wait")
        task = stub.SubmitTask(orchestrator_pb2.SubmitTaskRequest(task=spec), metadata=a).task
        assert task.tenant == "acme"
        calls: dict[str, Callable[[], object]] = {
            "get": lambda: stub.GetTask(orchestrator_pb2.GetTaskRequest(id=task.id), metadata=b),
            "cancel": lambda: stub.CancelTask(
                orchestrator_pb2.CancelTaskRequest(id=task.id), metadata=b
            ),
            "watch": lambda: next(
                stub.WatchTask(orchestrator_pb2.WatchTaskRequest(id=task.id), metadata=b)
            ),
        }
        for name, call in calls.items():
            with pytest.raises(grpc.RpcError) as err:
                call()
            assert err.value.code() == grpc.StatusCode.NOT_FOUND, name
        listed = stub.ListTasks(orchestrator_pb2.ListTasksRequest(), metadata=b).tasks
        assert task.id not in [t.id for t in listed]
        with pytest.raises(grpc.RpcError) as err:
            stub.ListTasks(orchestrator_pb2.ListTasksRequest(tenant="acme"), metadata=b)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        stub.CancelTask(orchestrator_pb2.CancelTaskRequest(id=task.id), metadata=a)


def test_a_grpc_client_without_credentials_is_refused(stack: Stack) -> None:
    with grpc.insecure_channel(stack.grpc_addr) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
        spec = common_pb2.TaskSpec(agent="echo", tenant="acme")
        for call in (
            lambda: stub.SubmitTask(orchestrator_pb2.SubmitTaskRequest(task=spec)),
            lambda: stub.ListTasks(orchestrator_pb2.ListTasksRequest()),
            lambda: stub.ListTasks(
                orchestrator_pb2.ListTasksRequest(), metadata=(("authorization", "Bearer nope"),)
            ),
        ):
            with pytest.raises(grpc.RpcError) as err:
                call()
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_a_worker_without_the_worker_token_is_refused(stack: Stack) -> None:
    register = worker_hub_pb2.SessionRequest(
        register=worker_hub_pb2.Register(
            worker_id="intruder", agents=[common_pb2.AgentInfo(name="evil")], concurrency=1
        )
    )
    with grpc.insecure_channel(stack.grpc_addr) as channel:
        stub = worker_hub_pb2_grpc.WorkerHubServiceStub(channel)
        for metadata, code in (
            (None, grpc.StatusCode.UNAUTHENTICATED),
            ((("authorization", f"Bearer {TOKENS.service}"),), grpc.StatusCode.PERMISSION_DENIED),
        ):
            with pytest.raises(grpc.RpcError) as err:
                next(stub.Session(iter([register]), metadata=metadata))
            assert err.value.code() == code
    with rest(stack, stack.keys["a"]) as a:
        assert a.get("/v1/agents/evil").status_code == 404


def _cli(*args: str, admin: str = TOKENS.admin, addr: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKLOOM_")}
    env.update(TASKLOOM_ADMIN_TOKEN=admin, TASKLOOM_ORCHESTRATOR_ADDR=addr)
    return subprocess.run(
        [sys.executable, "-m", "taskloom.sdk.cli", "keys", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_key_lifecycle_through_the_cli(stack: Stack) -> None:
    created = _cli("create", "--tenant", "initech", "--name", "ci", addr=stack.grpc_addr)
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
    assert key["tenant"] == "initech" and key["role"] == "tenant" and key["name"] == "ci"
    assert key["secret"].startswith(key["prefix"]) and len(key["secret"]) > 40

    with rest(stack, key["secret"]) as client:
        submitted = client.post("/v1/tasks", json={"agent": "echo", "input": "hi"})
        assert submitted.status_code == 202 and submitted.json()["tenant"] == "initech"

    listed = _cli("list", "--tenant", "initech", addr=stack.grpc_addr)
    assert [json.loads(line)["id"] for line in listed.stdout.splitlines()] == [key["id"]]
    assert "secret" not in listed.stdout and key["secret"] not in listed.stdout

    revoked = _cli("revoke", key["id"], addr=stack.grpc_addr)
    assert revoked.returncode == 0 and json.loads(revoked.stdout)["revoked_at"]
    with rest(stack, key["secret"]) as client:
        refused = client.post("/v1/tasks", json={"agent": "echo"})
        assert refused.status_code == 401 and refused.json()["reason"] == "UNAUTHENTICATED"
    assert _cli("list", "--tenant", "initech", addr=stack.grpc_addr).stdout == ""
    every = _cli("list", "--tenant", "initech", "--all", addr=stack.grpc_addr).stdout
    assert json.loads(every)["id"] == key["id"]

    # Only admins manage keys: a tenant's key is refused, and so is no credential.
    for admin, reason in ((stack.keys["a"], "PERMISSION_DENIED"), ("", "UNAUTHENTICATED")):
        denied = _cli("create", "--tenant", "acme", admin=admin, addr=stack.grpc_addr)
        assert denied.returncode == 1 and json.loads(denied.stderr)["reason"] == reason


def test_a_gateway_whose_token_the_orchestrator_refuses_answers_503(stack: Stack) -> None:
    wrong = Settings(
        orchestrator_addr=stack.grpc_addr, orchestrator_token="not-the-service-token-0123456789"
    )
    with (
        serve_gateway(wrong) as base_url,
        httpx.Client(base_url=base_url, timeout=20) as client,
    ):
        resp = client.get("/v1/agents", headers={"X-API-Key": stack.keys["a"]})
    assert resp.status_code == 503 and resp.headers["content-type"] == PROBLEM
    assert resp.headers["retry-after"]
