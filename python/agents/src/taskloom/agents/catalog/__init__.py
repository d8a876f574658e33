"""The agent catalog: agent definitions loaded from the YAML files shipped here and from
the operator's `--agents-dir` directories, validated into `AgentSpec`s."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import yaml
from pydantic import ValidationError

from taskloom.agents.catalog.spec import (
    AgentSpec,
    McpServerDecl,
    ProviderKind,
    SandboxLimits,
    ToolDecl,
)

__all__ = [
    "AgentSpec",
    "Catalog",
    "CatalogError",
    "McpServerDecl",
    "ProviderKind",
    "SandboxLimits",
    "ToolDecl",
    "load_catalog",
    "parse_agent",
]

SHIPPED_DIR = Path(__file__).parent


class CatalogError(ValueError):
    """An agent file is unreadable or invalid; the message names the file and the field."""


class Catalog(Mapping[str, AgentSpec]):
    """The agents a worker can run, by name, with the file each came from."""

    def __init__(
        self, specs: Iterable[AgentSpec], sources: Mapping[str, Path] | None = None
    ) -> None:
        self._specs = {spec.name: spec for spec in specs}
        self.sources: dict[str, Path] = dict(sources or {})

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


def load_catalog(
    extra_dirs: Iterable[Path] = (),
    *,
    previous: Catalog | None = None,
    errors: list[CatalogError] | None = None,
) -> Catalog:
    """Load the shipped agents, then each extra directory's `*.yaml`/`*.yml` files.

    A later directory may redefine an agent of an earlier one (operators override the
    shipped `assistant`); two files of the same directory may not define the same name.
    Without `previous` the first bad file raises. With it (a reload), a bad file is
    refused and recorded in `errors`, and the agents it defined before are kept.
    """
    specs: dict[str, AgentSpec] = {}
    sources: dict[str, Path] = {}

    def refuse(err: CatalogError, path: Path) -> None:
        if previous is None or errors is None:
            raise err
        errors.append(err)
        for name, source in previous.sources.items():
            if source == path:
                specs[name] = previous[name]
                sources[name] = path

    for directory in (SHIPPED_DIR, *extra_dirs):
        if not directory.is_dir():
            refuse(CatalogError(f"{directory}: agents directory does not exist"), directory)
            continue
        seen: dict[str, Path] = {}
        files = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
        for path in files:
            try:
                spec = parse_agent(path)
                if spec.name in seen:
                    raise CatalogError(
                        f"{path}: agent {spec.name!r} is already defined in {seen[spec.name]}"
                    )
            except CatalogError as err:
                refuse(err, path)
                continue
            seen[spec.name] = path
            specs[spec.name] = spec
            sources[spec.name] = path
    return Catalog(specs.values(), sources)
