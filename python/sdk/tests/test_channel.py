"""The orchestrator channel follows the leader: calls reach the orchestrator whose health
says SERVING for the service, never a standby, and move when the leader does."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from taskloom.sdk.channel import (
    ORCHESTRATOR_SERVICE,
    WORKER_HUB_SERVICE,
    check_addresses,
    orchestrator_channel,
    target,
)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def test_service_names_come_from_the_contracts() -> None:
    assert ORCHESTRATOR_SERVICE == "taskloom.v1.OrchestratorService"
    assert WORKER_HUB_SERVICE == "taskloom.v1.WorkerHubService"


def test_one_address_is_resolved_by_dns_and_a_list_address_by_address() -> None:
    assert target("orchestrator:50051") == "dns:///orchestrator:50051"
    assert target("127.0.0.1:1, 127.0.0.2:2") == "ipv4:127.0.0.1:1,127.0.0.2:2"
    assert target("localhost:7,127.0.0.1:7") == "ipv4:127.0.0.1:7"
    assert target("[::1]:7,[::1]:8") == "ipv6:[::1]:7,[::1]:8"
    # A name that does not resolve (yet) is left out; with none, gRPC's resolver retries.
    assert target("127.0.0.1:1,nowhere.invalid:2") == "ipv4:127.0.0.1:1"
    assert target("nowhere.invalid:2,127.0.0.1:1") == "ipv4:127.0.0.1:1"
    assert target("nowhere.invalid:2,elsewhere.invalid:3") == "dns:///nowhere.invalid:2"


@pytest.mark.parametrize("bad", ["", " , ", "orchestrator", "orchestrator:http", ":50051", "a:1,b"])
def test_an_address_that_is_not_host_port_is_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        check_addresses(bad)
    assert check_addresses("a:1, b:2") == "a:1, b:2"


class _Orchestrator:
    """A gRPC server whose health says whether it leads; it also answers the health check
    of its own name, so a caller learns which one it reached."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.health = health.aio.HealthServicer()
        self.server = grpc.aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")

    async def start(self, leading: bool) -> None:
        await self.server.start()
        await self.health.set(self.name, SERVING)
        await self.lead(leading)

    async def lead(self, leading: bool) -> None:
        await self.health.set(ORCHESTRATOR_SERVICE, SERVING if leading else NOT_SERVING)


async def _reached(channel: grpc.aio.Channel) -> str:
    check = channel.unary_unary(
        "/grpc.health.v1.Health/Check",
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )
    while True:
        try:
            await check(health_pb2.HealthCheckRequest(service="a"), timeout=10, wait_for_ready=True)
            return "a"
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.NOT_FOUND:
                return "b"
            # A call cut by the leader's death is made again, as a client would.
            assert err.code() == grpc.StatusCode.UNAVAILABLE, err


@pytest.mark.asyncio
async def test_calls_reach_the_leader_and_follow_it_when_it_moves() -> None:
    a, b = _Orchestrator("a"), _Orchestrator("b")
    await a.start(leading=False)
    await b.start(leading=True)
    channel = orchestrator_channel(
        f"127.0.0.1:{a.port},127.0.0.1:{b.port}", ORCHESTRATOR_SERVICE, wait_for_ready=True
    )
    try:
        assert [await _reached(channel) for _ in range(5)] == ["b"] * 5
        await b.server.stop(None)  # the leader dies
        await a.lead(True)  # the standby takes over
        assert [await _reached(channel) for _ in range(5)] == ["a"] * 5
    finally:
        await channel.close()
        await asyncio.gather(a.server.stop(None), b.server.stop(None))
