"""The most tasks one worker runs at once is stated once, on taskloom.v1.Register.concurrency:
the worker's `concurrency` setting and the real orchestrator (which grants no worker more
credits) both follow it, so a worker the settings accept registers, and one more does not."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from pydantic import ValidationError

from taskloom.agents.settings import CONCURRENCY_RANGE, Settings
from taskloom.testing.real_orchestrator import serve_real_orchestrator
from taskloom.v1 import common_pb2, worker_hub_pb2, worker_hub_pb2_grpc

BIN = Path(__file__).resolve().parents[3] / "bin"


@pytest.fixture(scope="module")
def orchestrator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("orchestrator")
    with serve_real_orchestrator(BIN / "taskloom-orchestrator", data) as addr:
        yield addr


def register(addr: str, concurrency: int) -> worker_hub_pb2.SessionResponse:
    """Opens a hub session with that concurrency; the hub's first answer (or its error)."""
    requests: queue.Queue[worker_hub_pb2.SessionRequest | None] = queue.Queue()
    requests.put(
        worker_hub_pb2.SessionRequest(
            register=worker_hub_pb2.Register(
                worker_id=f"limit-{concurrency}",
                agents=[common_pb2.AgentInfo(name="limit-agent")],
                concurrency=concurrency,
            )
        )
    )
    with grpc.insecure_channel(addr) as channel:
        responses = worker_hub_pb2_grpc.WorkerHubServiceStub(channel).Session(
            iter(requests.get, None), timeout=30
        )
        try:
            first: worker_hub_pb2.SessionResponse = next(responses)
            return first
        finally:
            requests.put(None)
            responses.cancel()


def test_the_settings_allow_exactly_the_range_the_proto_states() -> None:
    low, high = CONCURRENCY_RANGE
    assert (low, high) == (1, 4096)
    assert Settings(concurrency=high).concurrency == high
    for outside in (low - 1, high + 1):
        with pytest.raises(ValidationError, match="concurrency"):
            Settings(concurrency=outside)


def test_the_orchestrator_registers_the_most_the_settings_allow_and_refuses_one_more(
    orchestrator: str,
) -> None:
    high = CONCURRENCY_RANGE[1]
    assert register(orchestrator, high).HasField("registered")
    with pytest.raises(grpc.RpcError) as refused:
        register(orchestrator, high + 1)
    # A refused unary call's error is also its grpc.Call (code, details, trailers).
    call = cast(grpc.Call, refused.value)
    assert call.code() == grpc.StatusCode.INVALID_ARGUMENT, call.details()
    status = rpc_status.from_call(call)
    assert status is not None
    bad = error_details_pb2.BadRequest()
    assert any(detail.Unpack(bad) for detail in status.details)
    assert [v.field for v in bad.field_violations] == ["register.concurrency"]
