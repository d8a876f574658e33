"""Fixtures: a fake orchestrator (a real grpc.aio server) and gateway clients in front of it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from taskloom.gateway.app import create_app
from taskloom.gateway.config import Settings
from taskloom.gateway.testing import FakeOrchestrator, serve_fake_orchestrator

MakeClient = Callable[..., TestClient]


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

    def make(**settings: object) -> TestClient:
        settings.setdefault("orchestrator_addr", fake_orchestrator[1])
        client = TestClient(create_app(Settings(**settings)), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: MakeClient) -> TestClient:
    return make_client()
