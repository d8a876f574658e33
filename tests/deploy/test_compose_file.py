"""docker-compose.yml stays within the Compose Specification and agrees with the Dockerfiles
it builds; nothing in the default run needs a registry."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

from .deploy_files import COMPOSE_FILES, REPO, compose_file, compose_services, dockerfile_stages
from .service_settings import SERVICES

# check-jsonschema vendors the Compose Specification's schema, the one Compose v2 reads.
SCHEMA = json.loads(
    (resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json").read_text()
)


def spec_errors(document: object) -> list[str]:
    validator = jsonschema.Draft202012Validator(SCHEMA)
    return [f"{e.json_path}: {e.message}" for e in validator.iter_errors(document)]


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_file_follows_the_compose_specification(path: Path) -> None:
    assert spec_errors(compose_file(path)) == []


def test_the_schema_check_rejects_what_compose_would() -> None:
    assert spec_errors({"services": {"gateway": {"image": "x", "prots": ["8000:8000"]}}})
    assert spec_errors({"services": {"gateway": {"image": "x", "restart": 3}}})


def test_every_taskloom_service_is_in_compose() -> None:
    assert set(SERVICES) <= set(compose_services())


def test_only_the_grafana_profile_needs_a_registry() -> None:
    for name, service in compose_services().items():
        if "build" not in service:
            assert service.get("profiles") == ["grafana"], f"{name} would pull {service['image']}"


@pytest.mark.parametrize("name", sorted(n for n, s in compose_services().items() if "build" in s))
def test_build_targets_and_arguments_exist_in_the_dockerfile(name: str) -> None:
    build = compose_services()[name]["build"]
    stages = dockerfile_stages(REPO / build["context"] / build["dockerfile"])
    if "target" in build:
        assert build["target"] in {stage.name for stage in stages}
    declared = set().union(*(stage.args for stage in stages))
    assert set(build.get("args", {})) <= declared


def test_published_ports_listen_on_loopback_only() -> None:
    for name, service in compose_services().items():
        for port in service.get("ports", []):
            assert re.match(r"127\.0\.0\.1:", port), f"{name} publishes {port} on every address"
