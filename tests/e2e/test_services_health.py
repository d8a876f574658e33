"""Every service of the stack is healthy, observable and introspectable."""

from __future__ import annotations

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from taskloom.sdk.localstack import Stack

GRPC_SERVICES = {
    "orchestrator": {"taskloom.v1.OrchestratorService", "taskloom.v1.WorkerHubService"},
    "cache": {"taskloom.v1.CacheService"},
    "metrics": {"taskloom.v1.MetricsService"},
    "vector": {"taskloom.v1.VectorService"},
}
ALL = ["orchestrator", "cache", "metrics", "vector", "worker", "gateway"]


@pytest.mark.parametrize("name", ALL)
def test_http_health_readiness_and_metrics(stack: Stack, name: str) -> None:
    base = stack.service(name).base_url
    assert httpx.get(f"{base}/healthz").status_code == 200
    assert httpx.get(f"{base}/readyz").status_code == 200
    metrics = httpx.get(f"{base}/metrics")
    assert metrics.status_code == 200
    assert "taskloom_" in metrics.text, f"{name} exposes no taskloom_* metric"


@pytest.mark.parametrize("name", sorted(GRPC_SERVICES))
def test_grpc_health_and_reflection(stack: Stack, name: str) -> None:
    svc = stack.service(name)
    with grpc.insecure_channel(f"127.0.0.1:{svc.grpc_port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ["", *GRPC_SERVICES[name]]:
            request = health_pb2.HealthCheckRequest(service=service)
            # typeshed's HealthStub declares no methods; the generated class has Check.
            reply = health.Check(request, timeout=5)  # type: ignore[attr-defined]
            assert reply.status == health_pb2.HealthCheckResponse.SERVING, service
        listed = set(ProtoReflectionDescriptorDatabase(channel).get_services())
    assert GRPC_SERVICES[name] <= listed
    assert "grpc.health.v1.Health" in listed


def test_gateway_serves_openapi_docs(gateway: str) -> None:
    assert httpx.get(f"{gateway}/docs").status_code == 200
    spec = httpx.get(f"{gateway}/openapi.json").json()
    assert "/v1/tasks" in spec["paths"]
