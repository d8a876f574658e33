"""Every TASKLOOM_* variable that compose, the images and the Kubernetes manifests give a
service is a setting that service reads; a misspelt or stale one fails here."""

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
