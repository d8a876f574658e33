"""Authentication is on in the Compose stack: the orchestrator refuses a gRPC call without
the tokens that scripts/compose-secrets.sh made and Compose mounted as secrets."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from taskloom.v1 import common_pb2, orchestrator_pb2, orchestrator_pb2_grpc

from .compose_stack import ComposeStack

SECRETS = Path(__file__).resolve().parents[2] / "deploy/secrets"


def list_agents(compose: ComposeStack, token: str | None) -> orchestrator_pb2.ListAgentsResponse:
    target = compose.address("orchestrator", 50051)
    metadata = (("authorization", f"Bearer {token}"),) if token is not None else ()
    with grpc.insecure_channel(target) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
        response: orchestrator_pb2.ListAgentsResponse = stub.ListAgents(
            orchestrator_pb2.ListAgentsRequest(), metadata=metadata, timeout=30
        )
        return response


@pytest.mark.parametrize("token", [None, "not-the-service-token-0123456789"], ids=["none", "wrong"])
def test_the_orchestrator_refuses_a_call_without_its_token(
    compose: ComposeStack, token: str | None
) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        list_agents(compose, token)
    # A refused unary call's error is also its grpc.Call (code, details, trailers).
    call = cast(grpc.Call, refused.value)
    assert call.code() == grpc.StatusCode.UNAUTHENTICATED, call.details()
    status = rpc_status.from_call(call)
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    assert any(detail.Unpack(info) for detail in status.details)
    # The orchestrator names a reason without the enum's prefix (internal/errs.ReasonName).
    reason = common_pb2.ErrorReason.Name(common_pb2.ERROR_REASON_UNAUTHENTICATED)
    assert info.reason == reason.removeprefix("ERROR_REASON_")


def test_the_service_token_from_the_secret_is_accepted(compose: ComposeStack) -> None:
    token = (SECRETS / "service-token").read_text().strip()
    assert len(token) >= 16
    assert "assistant" in {agent.name for agent in list_agents(compose, token).agents}
