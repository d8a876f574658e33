"""The `TASKLOOM_*` variables each service reads, taken from the services themselves at test
time (never a list kept here): the Go and Rust binaries' `--help`, which names every
variable, and the Python services' pydantic settings classes."""

from __future__ import annotations

import importlib
import pkgutil
import re
import subprocess
from pathlib import Path

from pydantic import AliasChoices, BaseModel
from pydantic_settings import BaseSettings

BIN = Path(__file__).resolve().parents[2] / "bin"
ENV_NAME = re.compile(r"\bTASKLOOM_[A-Z0-9_]*[A-Z0-9]\b")

# Service name (as in compose and the Kubernetes manifests) → how to ask it.
BINARIES = {
    "orchestrator": "taskloom-orchestrator",
    "cache": "taskloom-cache",
    "metrics": "taskloom-metrics",
    "vector": "taskloom-vector",
}
PYTHON_PACKAGES = {"worker": "taskloom.agents", "gateway": "taskloom.gateway"}
SERVICES = sorted({*BINARIES, *PYTHON_PACKAGES})


def env_names(service: str) -> set[str]:
    """Every `TASKLOOM_*` variable the service reads."""
    if service in BINARIES:
        return _from_help(BIN / BINARIES[service])
    return _from_settings(PYTHON_PACKAGES[service])


def _from_help(binary: Path) -> set[str]:
    assert binary.exists(), f"{binary} is missing: run `make build`"
    done = subprocess.run([str(binary), "--help"], capture_output=True, text=True, timeout=30)
    return set(ENV_NAME.findall(done.stdout + done.stderr))


def _from_settings(package_name: str) -> set[str]:
    names: set[str] = set()
    for settings in _settings_classes(package_name):
        config = settings.model_config
        names |= _model_env_names(
            settings,
            prefix=str(config.get("env_prefix") or ""),
            delimiter=config.get("env_nested_delimiter"),
        )
    return names


def _settings_classes(package_name: str) -> list[type[BaseSettings]]:
    """The BaseSettings subclasses defined anywhere in the package."""
    package = importlib.import_module(package_name)
    for module in pkgutil.walk_packages(package.__path__, package_name + "."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    found = [
        cls
        for cls in _subclasses(BaseSettings)
        if cls.__module__ == package_name or cls.__module__.startswith(package_name + ".")
    ]
    assert found, f"no pydantic BaseSettings class in {package_name}"
    return found


def _subclasses(cls: type) -> list[type]:
    direct: list[type] = cls.__subclasses__()
    return direct + [sub for child in direct for sub in _subclasses(child)]


def _model_env_names(model: type[BaseModel], prefix: str, delimiter: str | None) -> set[str]:
    names: set[str] = set()
    for field_name, field in model.model_fields.items():
        # An alias replaces the prefixed field name as the variable's name.
        alias = field.validation_alias
        own = f"{prefix}{field_name}".upper()
        if isinstance(alias, AliasChoices):
            names |= {c for c in alias.choices if isinstance(c, str) and c.isupper()}
        elif isinstance(alias, str):
            names.add(alias.upper())
        else:
            names.add(own)
        nested = field.annotation
        if delimiter and isinstance(nested, type) and issubclass(nested, BaseModel):
            names |= _model_env_names(nested, prefix=own + delimiter, delimiter=delimiter)
    return {name for name in names if name.startswith("TASKLOOM_")}
