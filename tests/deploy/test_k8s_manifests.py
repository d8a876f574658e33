"""deploy/k8s/ renders with kustomize into objects that pass the Kubernetes schemas
(kubernetes-validate, offline) and hold to what Taskloom's pods need: probes (gRPC for gRPC
services), requests and limits, non-root and read-only, Services that reach their pods."""

from __future__ import annotations

import re
from typing import Any

import pytest
from kubernetes_validate import utils as kubernetes_schemas

from .deploy_files import K8S_TARGETS, REPO, compose_services, containers, rendered, workloads

# The oldest Kubernetes the manifests are for (gRPC probes are GA since 1.27), and the newest
# whose schemas kubernetes-validate ships.
KUBERNETES_VERSIONS = ["1.30.0", kubernetes_schemas.latest_version()]


def objects(target: str) -> list[tuple[str, dict[str, Any]]]:
    return [(f"{doc['kind']}/{doc['metadata']['name']}", doc) for doc in rendered(target)]


def workload(target: str, name: str) -> dict[str, Any]:
    return next(w for w in workloads(target) if w["metadata"]["name"] == name)


def proto_services() -> set[str]:
    found = set()
    for proto in (REPO / "proto/taskloom/v1").glob("*.proto"):
        found |= {
            f"taskloom.v1.{name}" for name in re.findall(r"^service (\w+)", proto.read_text(), re.M)
        }
    return found


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("target", K8S_TARGETS)
def test_every_object_passes_the_kubernetes_schemas(target: str, version: str) -> None:
    failures = {}
    for name, doc in objects(target):
        try:
            kubernetes_schemas.validate(doc, version, strict=True)
        except kubernetes_schemas.ValidationError as err:
            failures[name] = f"{'.'.join(map(str, err.path))}: {err.message}"
        except kubernetes_schemas.SchemaNotFoundError as err:
            failures[name] = err.message
    assert failures == {}


def test_the_schema_check_rejects_a_misspelt_field() -> None:
    doc = workload("base", "gateway")
    broken = {**doc, "spec": {**doc["spec"], "replica": 2}}
    with pytest.raises(kubernetes_schemas.ValidationError):
        kubernetes_schemas.validate(broken, KUBERNETES_VERSIONS[0], strict=True)


@pytest.mark.parametrize("target", K8S_TARGETS)
def test_every_pod_is_non_root_and_read_only_with_limits_and_probes(target: str) -> None:
    for item in workloads(target):
        pod = item["spec"]["template"]["spec"]
        name = item["metadata"]["name"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] != 0, name
        assert pod["automountServiceAccountToken"] is False, name
        for container in containers(item):
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"]["drop"] == ["ALL"], name
            for kind in ("requests", "limits"):
                assert set(container["resources"][kind]) == {"cpu", "memory"}, (name, kind)
            assert "readinessProbe" in container and "livenessProbe" in container, name


@pytest.mark.parametrize("target", K8S_TARGETS)
def test_grpc_services_are_probed_over_grpc_health(target: str) -> None:
    known = proto_services()
    probed = set()
    for item in workloads(target):
        for container in containers(item):
            grpc_ports = [p["containerPort"] for p in container["ports"] if p["name"] == "grpc"]
            if not grpc_ports:
                continue
            readiness = container["readinessProbe"]["grpc"]
            liveness = container["livenessProbe"]["grpc"]
            assert readiness["port"] == liveness["port"] == grpc_ports[0]
            # Ready when the service's own health status says SERVING.
            assert readiness["service"] in known, readiness
            probed.add(item["metadata"]["name"])
    assert probed == {"orchestrator", "cache", "metrics", "vector"}


@pytest.mark.parametrize("target", K8S_TARGETS)
def test_services_select_pods_and_their_named_ports(target: str) -> None:
    pods = [
        (w["spec"]["template"]["metadata"]["labels"], c["ports"])
        for w in workloads(target)
        for c in containers(w)
    ]
    for _, service in objects(target):
        if service["kind"] != "Service":
            continue
        selector = service["spec"]["selector"]
        matching = [ports for labels, ports in pods if selector.items() <= labels.items()]
        assert matching, f"service {service['metadata']['name']} selects no pod"
        names = {p["name"] for ports in matching for p in ports}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in names, (service["metadata"]["name"], port)


@pytest.mark.parametrize("target", K8S_TARGETS)
def test_addresses_in_the_environment_name_a_service_port(target: str) -> None:
    service_ports = {
        (doc["metadata"]["name"], port["port"])
        for _, doc in objects(target)
        if doc["kind"] == "Service"
        for port in doc["spec"]["ports"]
    }
    for item in workloads(target):
        for container in containers(item):
            for env in container.get("env", []):
                value = env.get("value", "")
                match = re.fullmatch(r"(?:redis://)?([a-z0-9-]+):(\d+)(?:/\d+)?", value)
                if match:
                    assert (match[1], int(match[2])) in service_ports, (target, env)


@pytest.mark.parametrize("target", K8S_TARGETS)
def test_workers_scale_with_a_horizontal_pod_autoscaler(target: str) -> None:
    hpas = [doc for _, doc in objects(target) if doc["kind"] == "HorizontalPodAutoscaler"]
    assert [h["spec"]["scaleTargetRef"]["name"] for h in hpas] == ["worker"]
    assert hpas[0]["spec"]["scaleTargetRef"]["kind"] == "Deployment"
    assert 1 <= hpas[0]["spec"]["minReplicas"] < hpas[0]["spec"]["maxReplicas"]


@pytest.mark.parametrize("target", K8S_TARGETS)
def test_one_orchestrator_and_never_two_during_a_rollout(target: str) -> None:
    # Until the standby orchestrator (issue #15 item 3), two on one store would both schedule.
    orchestrator = workload(target, "orchestrator")
    assert orchestrator["spec"]["replicas"] == 1
    assert orchestrator["spec"]["strategy"] == {"type": "Recreate"}


def test_redis_runs_in_the_cluster_in_dev_and_outside_it_in_prod() -> None:
    assert "redis" in {w["metadata"]["name"] for w in workloads("overlays/dev")}
    assert "redis" not in {w["metadata"]["name"] for w in workloads("overlays/prod")}
    for name in ("orchestrator", "cache"):
        env = {e["name"]: e for e in containers(workload("overlays/prod", name))[0]["env"]}
        assert env["TASKLOOM_REDIS_URL"]["valueFrom"]["secretKeyRef"]["name"] == "taskloom-redis"


def test_manifests_run_the_images_compose_builds() -> None:
    built = {s["image"].split(":")[0] for s in compose_services().values() if "build" in s}
    for target in K8S_TARGETS:
        for item in workloads(target):
            for container in containers(item):
                assert container["image"].split(":")[0] in built, container["image"]
