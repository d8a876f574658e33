"""API keys, managed at the orchestrator that stores them (hashed): create, list and revoke
over its gRPC API with an admin credential (its admin token, or an admin API key). The CLI's
`taskloom keys` commands are this module's only callers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
from google.protobuf import json_format

from taskloom.v1 import orchestrator_pb2, orchestrator_pb2_grpc

ROLES = {
    "tenant": orchestrator_pb2.API_KEY_ROLE_TENANT,
    "admin": orchestrator_pb2.API_KEY_ROLE_ADMIN,
}
TIMEOUT_S = 10.0


def key_json(key: orchestrator_pb2.APIKey) -> dict[str, Any]:
    """A key as the CLI prints it: snake_case, its role as `tenant` or `admin`."""
    out = json_format.MessageToDict(key, preserving_proto_field_name=True)
    out["role"] = orchestrator_pb2.APIKeyRole.Name(key.role).removeprefix("API_KEY_ROLE_").lower()
    return out


class KeyAdmin:
    """An admin's session with the orchestrator at `addr`, authenticated with `token`."""

    def __init__(self, addr: str, token: str) -> None:
        self._channel = grpc.insecure_channel(addr)
        self._stub = orchestrator_pb2_grpc.OrchestratorServiceStub(self._channel)
        self._metadata = (("authorization", f"Bearer {token}"),) if token else None

    def __enter__(self) -> KeyAdmin:
        return self

    def __exit__(self, *exc: object) -> None:
        self._channel.close()

    def create(
        self, tenant: str, role: str = "tenant", name: str = ""
    ) -> tuple[dict[str, Any], str]:
        """The new key and its secret (shown this once)."""
        req = orchestrator_pb2.CreateAPIKeyRequest(tenant=tenant, role=ROLES[role], name=name)
        resp = self._stub.CreateAPIKey(req, timeout=TIMEOUT_S, metadata=self._metadata)
        return key_json(resp.api_key), resp.secret

    def list(self, tenant: str = "", include_revoked: bool = False) -> Iterator[dict[str, Any]]:
        """Every key (of the tenant), page after page."""
        token = ""
        while True:
            req = orchestrator_pb2.ListAPIKeysRequest(
                tenant=tenant, page_token=token, include_revoked=include_revoked
            )
            resp = self._stub.ListAPIKeys(req, timeout=TIMEOUT_S, metadata=self._metadata)
            yield from (key_json(k) for k in resp.api_keys)
            if not resp.next_page_token:
                return
            token = resp.next_page_token

    def revoke(self, key_id: str) -> dict[str, Any]:
        req = orchestrator_pb2.RevokeAPIKeyRequest(id=key_id)
        resp = self._stub.RevokeAPIKey(req, timeout=TIMEOUT_S, metadata=self._metadata)
        return key_json(resp.api_key)
