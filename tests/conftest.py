"""Fixtures shared by the cross-service tests: the real stack on system-chosen ports."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskloom.sdk.localstack import Ports, Stack, StackConfig

REPO = Path(__file__).resolve().parents[1]
BIN = REPO / "bin"

# Fast simulated LLM so the tests spend their time on Taskloom, not on sleeping.
FAST_SIMULATION = {"TASKLOOM_SIM_LATENCY_MS": "30", "TASKLOOM_SIM_TOKENS_PER_SECOND": "400"}

# Set, the tests drive an already running stack through its gateway (e.g. the containers of
# `make compose-test`) instead of starting local processes.
GATEWAY_URL = os.environ.get("TASKLOOM_E2E_GATEWAY_URL", "").rstrip("/")


@pytest.fixture(scope="session")
def local_processes() -> None:
    """Skips a test that starts, stops or inspects the stack's local processes."""
    if GATEWAY_URL:
        pytest.skip(
            f"TASKLOOM_E2E_GATEWAY_URL={GATEWAY_URL} targets a running stack; this test needs "
            "the stack's local processes (it starts, stops or inspects them)"
        )


@pytest.fixture(scope="session")
def stack(local_processes: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    cfg = StackConfig(
        bin_dir=BIN,
        state_dir=tmp_path_factory.mktemp("stack"),
        ports=Ports.random(),
        worker_env=FAST_SIMULATION,
    )
    running = Stack(cfg)
    running.start()
    try:
        yield running
    finally:
        codes = running.stop()
    # SIGTERM drains every service and exits 0 (DESIGN.md §6).
    assert {name: code for name, code in codes.items() if code != 0} == {}


@pytest.fixture(scope="session")
def gateway(request: pytest.FixtureRequest) -> str:
    if GATEWAY_URL:
        return GATEWAY_URL
    url: str = request.getfixturevalue("stack").gateway_url
    return url
