"""The agent catalog: agent definitions loaded from the YAML files shipped here and from
the operator's `--agents-dir` directories, validated into `AgentSpec`s."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from enum import StrEnum
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

SHIPPED_DIR = Path(__file__).parent


class ProviderKind(StrEnum):
    SIMULATED = "simulated"
    OPENAI = "openai"
    ANTHROPIC = "anthropic"


class AgentSpec(BaseModel):
    """One agent as written in YAML."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")
    description: str = ""
    provider: ProviderKind = ProviderKind.SIMULATED
    model: str = Field(min_length=1)
    system: str = ""
    temperature: float = Field(default=0.2, ge=0.0, le=2.0)
    max_tokens: int = Field(default=512, ge=1, le=1_000_000)
    cache: bool = True
    tools: tuple[str, ...] = ()


class CatalogError(ValueError):
    """An agent file is unreadable or invalid; the message names the file and the field."""


class Catalog(Mapping[str, AgentSpec]):
    """The agents a worker can run, by name."""

    def __init__(self, specs: Iterable[AgentSpec]) -> None:
        self._specs = {spec.name: spec for spec in specs}

    def __getitem__(self, name: str) -> AgentSpec:
        return self._specs[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)


def parse_agent(path: Path) -> AgentSpec:
    """Read and validate one agent file."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise CatalogError(f"{path}: cannot read agent file: {err.strerror or err}") from err
    except yaml.YAMLError as err:
        raise CatalogError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(data, dict):
        kind = type(data).__name__
        raise CatalogError(f"{path}: an agent file must be a YAML mapping, got {kind}")
    try:
        return AgentSpec.model_validate(data)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in err.errors()
        )
        raise CatalogError(f"{path}: invalid agent: {problems}") from err


def load_catalog(extra_dirs: Iterable[Path] = ()) -> Catalog:
    """Load the shipped agents, then each extra directory's `*.yaml`/`*.yml` files.

    A later directory may redefine an agent of an earlier one (operators override the
    shipped `assistant`); two files of the same directory may not define the same name.
    """
    specs: dict[str, AgentSpec] = {}
    for directory in (SHIPPED_DIR, *extra_dirs):
        if not directory.is_dir():
            raise CatalogError(f"{directory}: agents directory does not exist")
        seen: dict[str, Path] = {}
        files = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
        for path in files:
            spec = parse_agent(path)
            if spec.name in seen:
                raise CatalogError(
                    f"{path}: agent {spec.name!r} is already defined in {seen[spec.name]}"
                )
            seen[spec.name] = path
            specs[spec.name] = spec
    return Catalog(specs.values())
