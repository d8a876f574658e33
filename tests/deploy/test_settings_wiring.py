"""Every TASKLOOM_* variable that compose, the images and the Kubernetes manifests give a
service is a setting that service reads; a misspelt or stale one fails here. And the
gateway is given the backends it shares with the workers."""

from __future__ import annotations

import pytest

from .deploy_files import (
    K8S_TARGETS,
    REPO,
    compose_environment,
    compose_services,
    containers,
    image_environment,
    workloads,
)
from .service_settings import SERVICES, env_names


def given_variables(service: str) -> dict[str, set[str]]:
    """Where each TASKLOOM_* variable given to the service comes from → its names."""
    build = compose_services()[service]["build"]
    sources = {
        "docker-compose": set(compose_environment(service)),
        build["dockerfile"]: set(
            image_environment(REPO / build["context"] / build["dockerfile"], build.get("target"))
        ),
    }
    for target in K8S_TARGETS:
        for workload in workloads(target):
            for container in containers(workload):
                if container["name"] == service:
                    names = {env["name"] for env in container.get("env", [])}
                    sources.setdefault(f"deploy/k8s/{target}", set()).update(names)
    return {
        source: {name for name in names if name.startswith("TASKLOOM_")}
        for source, names in sources.items()
    }


@pytest.mark.parametrize("service", SERVICES)
def test_every_variable_given_is_a_setting_of_the_service(service: str) -> None:
    known = env_names(service)
    unknown = {source: sorted(names - known) for source, names in given_variables(service).items()}
    assert {source: names for source, names in unknown.items() if names} == {}


@pytest.mark.parametrize("service", SERVICES)
def test_settings_are_read_from_the_service_itself(service: str) -> None:
    # Every service has these; a discovery that found nothing would pass everything above.
    known = env_names(service)
    assert {"TASKLOOM_LOG_LEVEL", "TASKLOOM_HTTP_ADDR"} <= known
    assert "TASKLOOM_NO_SUCH_SETTING" not in known


@pytest.mark.parametrize("service", SERVICES)
def test_images_listen_on_every_interface_at_the_ports_the_manifests_name(service: str) -> None:
    # The services default to 127.0.0.1, which nothing outside a container can reach.
    build = compose_services()[service]["build"]
    env = image_environment(REPO / build["context"] / build["dockerfile"], build.get("target"))
    for target in K8S_TARGETS:
        ports = {
            port["name"]: port["containerPort"]
            for workload in workloads(target)
            for container in containers(workload)
            if container["name"] == service
            for port in container["ports"]
        }
        assert "http" in ports, (target, service)
        for name, number in ports.items():
            assert env[f"TASKLOOM_{name.upper()}_ADDR"] == f"0.0.0.0:{number}", (target, name)


# Backends the gateway reaches as the workers do: the metrics service (GET
# /v1/metrics/agents) and the vector service (/v1/collections). Without them there it
# answers 503 while the workers use them.
SHARED_BACKENDS = ("TASKLOOM_METRICS_ADDR", "TASKLOOM_VECTOR_ADDR")


def k8s_environment(target: str, service: str) -> dict[str, str]:
    """The literal environment of the service's containers in the rendered manifests."""
    return {
        env["name"]: env.get("value", "")
        for workload in workloads(target)
        for container in containers(workload)
        if container["name"] == service
        for env in container.get("env", [])
    }


@pytest.mark.parametrize("source", ["docker-compose", *(f"deploy/k8s/{t}" for t in K8S_TARGETS)])
def test_the_gateway_reaches_the_metrics_and_vector_services_the_workers_use(
    source: str,
) -> None:
    def backends(service: str) -> dict[str, str]:
        if source == "docker-compose":
            env = compose_environment(service)
        else:
            env = k8s_environment(source.removeprefix("deploy/k8s/"), service)
        return {name: env.get(name, "") for name in SHARED_BACKENDS}

    worker = backends("worker")
    assert all(worker.values()), (source, worker)
    assert backends("gateway") == worker, source
