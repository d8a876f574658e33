"""docker-compose.yml stays within the Compose Specification and agrees with the Dockerfiles
it builds; nothing in the default run needs a registry; its tokens and provider keys are
secrets that scripts/compose-secrets.sh makes, with authentication on."""

from __future__ import annotations

import json
import re
import stat
import subprocess
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

from .deploy_files import (
    COMPOSE_FILES,
    REPO,
    compose_environment,
    compose_file,
    compose_services,
    dockerfile_stages,
)
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


def test_the_standby_profile_runs_a_second_orchestrator_both_reached_by_one_alias() -> None:
    services = compose_services()
    primary, standby = services["orchestrator"], services["orchestrator-standby"]
    assert standby["profiles"] == ["standby"]
    assert standby["image"] == primary["image"] and standby["build"] == primary["build"]
    for orchestrator in (primary, standby):
        assert orchestrator["networks"]["default"]["aliases"] == ["orchestrators"]
        assert orchestrator["environment"]["TASKLOOM_STORE"] == "redis"  # leader election
    # Each names itself to clients refused with NOT_LEADER; the alias would be ambiguous.
    assert primary["environment"]["TASKLOOM_ADVERTISE_ADDR"] == "orchestrator:50051"
    assert standby["environment"]["TASKLOOM_ADVERTISE_ADDR"] == "orchestrator-standby:50051"
    # Healthy means alive: a standby is never ready. It starts once the first one leads.
    assert standby["healthcheck"]["test"][-1].endswith("/healthz")
    assert standby["depends_on"] == {"orchestrator": {"condition": "service_healthy"}}
    assert "ports" not in standby or standby["ports"] == []
    for client in ("worker", "gateway"):
        assert (
            services[client]["environment"]["TASKLOOM_ORCHESTRATOR_ADDR"] == "orchestrators:50051"
        )


SECRET_FILE_VARIABLE = re.compile(r"^[A-Z0-9_]+_FILE$")


def mounted_secrets(service: str) -> dict[str, str]:
    """The service's *_FILE variables that name a Compose secret → that secret's name."""
    mounted = set(compose_services()[service].get("secrets", []))
    found = {}
    for name, value in compose_environment(service).items():
        if SECRET_FILE_VARIABLE.match(name) and value.startswith("/run/secrets/"):
            secret = value.removeprefix("/run/secrets/")
            assert secret in mounted, f"{service}: {name} names {secret}, which is not mounted"
            found[name] = secret
    return found


def test_grpc_authentication_is_on_and_the_tokens_are_secrets() -> None:
    services = compose_services()
    for name in ("orchestrator", "orchestrator-standby"):
        assert services[name]["environment"]["TASKLOOM_AUTH"] == "on"
        assert mounted_secrets(name) == {
            "TASKLOOM_SERVICE_TOKEN_FILE": "service-token",
            "TASKLOOM_WORKER_TOKEN_FILE": "worker-token",
            "TASKLOOM_ADMIN_TOKEN_FILE": "admin-token",
        }
    assert mounted_secrets("worker") == {
        "TASKLOOM_WORKER_TOKEN_FILE": "worker-token",
        "TASKLOOM_OPENAI_API_KEY_FILE": "openai-api-key",
        "ANTHROPIC_API_KEY_FILE": "anthropic-api-key",
    }
    assert mounted_secrets("gateway") == {"TASKLOOM_ORCHESTRATOR_TOKEN_FILE": "service-token"}


def test_no_secret_is_passed_in_the_environment() -> None:
    secret_words = {"TOKEN", "KEY", "PASSWORD", "SECRET"}
    for name in compose_services():
        for variable in compose_environment(name):
            if secret_words & set(variable.split("_")):
                assert variable.endswith("_FILE"), f"{name}: {variable} holds a secret itself"


def test_the_secrets_script_makes_every_secret_compose_mounts(tmp_path: Path) -> None:
    declared = compose_file(COMPOSE_FILES[0])["secrets"]
    files = {Path(secret["file"]).name for secret in declared.values()}
    assert {Path(secret["file"]).parent for secret in declared.values()} == {Path("deploy/secrets")}
    assert "/deploy/secrets/" in (REPO / ".gitignore").read_text().split()
    target = tmp_path / "secrets"

    def make() -> dict[str, str]:
        done = subprocess.run(
            [str(REPO / "scripts/compose-secrets.sh"), str(target)],
            capture_output=True,
            text=True,
            check=True,
        )
        made = {path.name: path.read_text() for path in target.iterdir()}
        for value in made.values():
            assert not value or value not in done.stdout + done.stderr  # never printed
        return made

    made = make()
    assert set(made) == files
    tokens = [made[name] for name in ("service-token", "worker-token", "admin-token")]
    # Random, distinct, and as long as the orchestrator accepts (internal/config/auth.go).
    assert len(set(tokens)) == 3 and all(len(token) >= 16 for token in tokens)
    assert made["openai-api-key"] == made["anthropic-api-key"] == ""  # optional: no key
    assert stat.S_IMODE(target.stat().st_mode) == 0o700
    # Kept on the next run: the stack's tokens stay the same across `up`s.
    (target / "openai-api-key").write_text("sk-mine")
    assert make() == {**made, "openai-api-key": "sk-mine"}
