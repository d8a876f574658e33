"""Fixtures: the real gateway (uvicorn on a loopback port) in front of a fake orchestrator."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from taskloom.gateway.config import Settings
from taskloom.sdk.client import TaskloomClient
from taskloom.testing.fake_orchestrator import FakeOrchestrator, serve_fake_orchestrator
from taskloom.testing.servers import serve_gateway


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[FakeOrchestrator, str]]:
    """The fake orchestrator and the base URL of a gateway with auth on (key `k1`)."""
    with (
        serve_fake_orchestrator() as (fake, addr),
        serve_gateway(Settings(orchestrator_addr=addr, api_keys="k1=acme")) as url,
    ):
        yield fake, url


@pytest.fixture
def fake(stack: tuple[FakeOrchestrator, str]) -> Iterator[FakeOrchestrator]:
    yield stack[0]
    stack[0].queue_full = False


@pytest.fixture
def base_url(stack: tuple[FakeOrchestrator, str]) -> str:
    return stack[1]


@pytest.fixture
def client(base_url: str) -> Iterator[TaskloomClient]:
    with TaskloomClient(base_url, api_key="k1") as c:
        yield c
