"""Fixtures: the gateway in front of an orchestrator.

`orchestrator` makes a test a contract test: it runs once against the fake orchestrator
(in process) and once against the real binary (`bin/taskloom-orchestrator`, a temporary
store, and the echo worker registered), and must pass against both, as the Go stores'
contract suite does. `fake_orchestrator` is for tests of the gateway alone that need to
steer or inspect the orchestrator (faults, metadata, open watches).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from taskloom.gateway.app import create_app
from taskloom.gateway.config import Settings
from taskloom.testing.fake_orchestrator import FakeOrchestrator, serve_fake_orchestrator
from taskloom.testing.servers import serve_gateway
from taskloom.testing.under_test import KINDS, OrchestratorUnderTest, serve_orchestrator

BIN = Path(__file__).resolve().parents[3] / "bin"

MakeClient = Callable[..., TestClient]


@pytest.fixture(scope="session", params=KINDS)
def orchestrator(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OrchestratorUnderTest]:
    with serve_orchestrator(request.param, BIN, tmp_path_factory.mktemp("orchestrator")) as under:
        yield under


@pytest.fixture
def tenant() -> str:
    """A tenant of this test alone, so that tests sharing an orchestrator see only theirs."""
    return f"t-{uuid.uuid4().hex[:12]}"


def _open(settings: Settings, clients: list[TestClient], **headers: str) -> TestClient:
    client = TestClient(create_app(settings), raise_server_exceptions=False, headers=headers)
    client.__enter__()
    clients.append(client)
    return client


@pytest.fixture
def client(orchestrator: OrchestratorUnderTest, tenant: str) -> Iterator[TestClient]:
    """A gateway client of the test's own tenant; what the test left running is cancelled."""
    clients: list[TestClient] = []
    key = f"key-{tenant}"
    settings = Settings(orchestrator_addr=orchestrator.addr, api_keys=f"{key}={tenant}")
    client = _open(settings, clients, **{"X-API-Key": key})
    yield client
    for status in ("queued", "running"):
        for task in client.get("/v1/tasks", params={"status": status}).json()["tasks"]:
            client.post(f"/v1/tasks/{task['id']}/cancel")
    client.__exit__(None, None, None)


@pytest.fixture
def served(orchestrator: OrchestratorUnderTest, tenant: str) -> Iterator[httpx.Client]:
    """An HTTP client of the test's tenant, to the gateway served by uvicorn (real streaming)."""
    settings = Settings(orchestrator_addr=orchestrator.addr, api_keys=f"k={tenant}")
    with (
        serve_gateway(settings) as base_url,
        httpx.Client(base_url=base_url, timeout=20, headers={"X-API-Key": "k"}) as http,
    ):
        yield http


@pytest.fixture
def fake_orchestrator() -> Iterator[tuple[FakeOrchestrator, str]]:
    with serve_fake_orchestrator() as served:
        yield served


@pytest.fixture
def fake(fake_orchestrator: tuple[FakeOrchestrator, str]) -> FakeOrchestrator:
    return fake_orchestrator[0]


@pytest.fixture
def make_client(fake_orchestrator: tuple[FakeOrchestrator, str]) -> Iterator[MakeClient]:
    """Build a TestClient for a gateway with the given settings (the fake's address by default)."""
    clients: list[TestClient] = []

    def make(**settings: Any) -> TestClient:
        settings.setdefault("orchestrator_addr", fake_orchestrator[1])
        return _open(Settings(**settings), clients)

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def fake_client(make_client: MakeClient) -> TestClient:
    """A gateway client, auth off, in front of a fresh fake orchestrator."""
    return make_client()
