"""Reading what deploy/ declares, as the tools that run it would: the Compose files (with
YAML merge keys resolved), the Dockerfiles' stages, and the Kubernetes manifests rendered
by kustomize."""

from __future__ import annotations

import re
import shlex
import subprocess
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILES = [REPO / "docker-compose.yml", REPO / "tests/compose/compose.ci.yml"]
K8S = REPO / "deploy/k8s"
K8S_TARGETS = ["base", "overlays/dev", "overlays/prod"]
KUSTOMIZE = REPO / ".tools/bin/kustomize"
WORKLOAD_KINDS = {"Deployment", "StatefulSet"}


@cache
def compose_file(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    return doc


def compose_services() -> dict[str, dict[str, Any]]:
    """docker-compose.yml's services (without the CI override)."""
    services: dict[str, dict[str, Any]] = compose_file(COMPOSE_FILES[0])["services"]
    return services


def compose_environment(service: str) -> dict[str, str]:
    """A service's environment over every Compose file, as Compose merges it."""
    merged: dict[str, str] = {}
    for path in COMPOSE_FILES:
        env = compose_file(path)["services"].get(service, {}).get("environment", {})
        if isinstance(env, list):
            env = dict(item.partition("=")[::2] for item in env)
        merged.update(env)
    return merged


@dataclass
class Stage:
    name: str
    base: str
    env: dict[str, str] = field(default_factory=dict)
    args: set[str] = field(default_factory=set)


@cache
def dockerfile_stages(path: Path) -> list[Stage]:
    """The Dockerfile's stages in order; ARGs before the first FROM go to a stage named ''."""
    text = re.sub(r"\\\n", " ", path.read_text())
    stages = [Stage(name="", base="")]
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        if not words:
            continue
        instruction, rest = words[0].upper(), words[1:]
        if instruction == "FROM":
            name = rest[2] if len(rest) >= 3 and rest[1].upper() == "AS" else f"#{len(stages)}"
            stages.append(Stage(name=name, base=rest[0]))
        elif instruction == "ENV":
            stages[-1].env.update(word.partition("=")[::2] for word in rest)
        elif instruction == "ARG":
            stages[-1].args.update(word.partition("=")[0] for word in rest)
    return stages


def image_environment(dockerfile: Path, target: str | None) -> dict[str, str]:
    """The ENV of the target stage (the last one without a target), its parents' included."""
    stages = dockerfile_stages(dockerfile)
    by_name = {stage.name: stage for stage in stages}
    stage: Stage | None = by_name[target] if target else stages[-1]
    env: dict[str, str] = {}
    while stage is not None:
        env = {**stage.env, **env}
        stage = by_name.get(stage.base)
    return env


@cache
def rendered(target: str) -> list[dict[str, Any]]:
    """`kustomize build deploy/k8s/<target>`: every object it renders."""
    assert KUSTOMIZE.exists(), f"{KUSTOMIZE} is missing: run `make tools`"
    done = subprocess.run(
        [str(KUSTOMIZE), "build", str(K8S / target)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def workloads(target: str) -> list[dict[str, Any]]:
    return [doc for doc in rendered(target) if doc["kind"] in WORKLOAD_KINDS]


def containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = workload["spec"]["template"]["spec"]["containers"]
    return found
