"""The agent worker's configuration: one typed object from defaults, `TASKLOOM_*` env and flags."""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Settings(BaseSettings):
    """Every setting of the worker: flags override `TASKLOOM_*` env, which overrides defaults."""

    model_config = SettingsConfigDict(env_prefix="TASKLOOM_", extra="ignore")

    orchestrator_addr: str = "127.0.0.1:50051"
    # host:port of the cache / metrics services; empty = not used.
    cache_addr: str = ""
    metrics_addr: str = ""
    # Health and metrics HTTP port; the next free port (up to +20) is taken when busy.
    http_addr: str = "127.0.0.1:9105"
    worker_id: str = Field(default_factory=_default_worker_id)
    concurrency: int = Field(default=16, ge=1, le=10_000)
    # Extra directories of agent YAML files on top of the shipped catalog (env: `:`-separated).
    agents_dir: Annotated[list[Path], NoDecode] = Field(default_factory=list)
    log_level: str = "info"

    drain_timeout_s: float = Field(default=10.0, ge=0)
    reconnect_initial_s: float = Field(default=0.5, gt=0)
    reconnect_max_s: float = Field(default=15.0, gt=0)
    # Used until the orchestrator's Registered message says otherwise.
    heartbeat_interval_s: float = Field(default=5.0, gt=0)

    cache_timeout_s: float = Field(default=0.5, gt=0)
    cache_ttl_s: float = Field(default=0.0, ge=0)  # 0 = the namespace's default TTL
    metrics_interval_s: float = Field(default=1.0, gt=0)

    # The simulated provider: time to first token and token rate (0 = no delay).
    sim_latency_ms: float = Field(default=200.0, ge=0)
    sim_tokens_per_second: float = Field(default=50.0, ge=0)

    # OpenAI-compatible chat completions API (OpenAI, vLLM, Ollama, llama.cpp server, OpenRouter).
    openai_base_url: str = Field(
        default="https://api.openai.com/v1",
        validation_alias=AliasChoices(
            "TASKLOOM_OPENAI_BASE_URL", "OPENAI_BASE_URL", "openai_base_url"
        ),
    )
    openai_api_key: SecretStr = Field(
        default=SecretStr(""),
        validation_alias=AliasChoices(
            "TASKLOOM_OPENAI_API_KEY", "OPENAI_API_KEY", "openai_api_key"
        ),
    )
    llm_timeout_s: float = Field(default=120.0, gt=0)
    llm_max_retries: int = Field(default=3, ge=0)

    @field_validator("agents_dir", mode="before")
    @classmethod
    def _split_dirs(cls, value: object) -> object:
        if isinstance(value, str):
            return [part for part in value.split(os.pathsep) if part]
        return value

    def printable(self) -> dict[str, Any]:
        """The settings as JSON-ready values, secrets masked."""
        out = self.model_dump(mode="json")
        out["openai_api_key"] = "***" if self.openai_api_key.get_secret_value() else ""
        return out


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def load_settings(argv: Sequence[str] | None = None) -> Settings:
    """Build the settings from env and command-line flags (flags win)."""
    parser = argparse.ArgumentParser(
        prog="python -m taskloom.agents",
        description="Taskloom agent worker. Each flag also reads TASKLOOM_<NAME> from the env.",
        argument_default=argparse.SUPPRESS,
    )
    for name, field in Settings.model_fields.items():
        if name == "agents_dir":
            parser.add_argument(_flag(name), action="append", type=Path, help=field.description)
        elif name == "openai_api_key":
            continue  # secrets come from the environment only, never from argv
        else:
            kind: type[Any] = field.annotation if field.annotation in (int, float) else str  # type: ignore[assignment]
            parser.add_argument(_flag(name), type=kind, metavar=name.upper())
    overrides = vars(parser.parse_args(argv))
    return Settings(**overrides)
