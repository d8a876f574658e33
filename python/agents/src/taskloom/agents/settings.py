"""The agent worker's configuration: one typed object read in the layers of `taskloom.sdk.config`
(defaults, the `worker:` section of the config file, `TASKLOOM_*` env, flags)."""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, ClassVar

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from taskloom.agents.catalog import CatalogError, load_catalog
from taskloom.sdk import config


def _default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Settings(config.ServiceSettings):
    """Taskloom agent worker."""

    config_section: ClassVar[str] = "worker"

    orchestrator_addr: str = Field(
        default="127.0.0.1:50051", description="host:port of the orchestrator's gRPC port"
    )
    cache_addr: str = Field(default="", description="host:port of the cache service; empty = off")
    metrics_addr: str = Field(
        default="", description="host:port of the metrics service; empty = off"
    )
    vector_addr: str = Field(
        default="",
        description="host:port of the vector memory service (reserved for agent memory); "
        "empty = off",
    )
    http_addr: str = Field(
        default="127.0.0.1:9105",
        description="host:port of the health and metrics HTTP port; when busy, the next free "
        "port (up to +20) is taken",
    )
    worker_id: str = Field(
        default_factory=_default_worker_id,
        description="this worker's id (default: <hostname>-<pid>)",
    )
    concurrency: int = Field(
        default=16, ge=1, le=10_000, description="tasks this worker runs at once"
    )
    agents_dir: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="extra directory of agent YAML files on top of the shipped catalog; "
        "repeat the flag for more; in the env, ':'-separated",
    )
    log_level: str = Field(default="info", description="debug, info, warning or error")

    drain_timeout_s: float = Field(
        default=10.0, ge=0, description="on SIGTERM, how long running tasks may finish"
    )
    reconnect_initial_s: float = Field(
        default=0.5, gt=0, description="first delay before reconnecting to the orchestrator"
    )
    reconnect_max_s: float = Field(
        default=15.0, gt=0, description="ceiling of the reconnect backoff"
    )
    heartbeat_interval_s: float = Field(
        default=5.0,
        gt=0,
        description="heartbeat interval until the orchestrator's Registered message sets one",
    )

    cache_timeout_s: float = Field(default=0.5, gt=0, description="deadline of each cache call")
    cache_ttl_s: float = Field(
        default=0.0, ge=0, description="TTL of cached LLM answers; 0 = the namespace's default"
    )
    metrics_interval_s: float = Field(
        default=1.0, gt=0, description="how often metrics are pushed to the metrics service"
    )

    sim_latency_ms: float = Field(
        default=200.0, ge=0, description="simulated provider: time to first token (0 = none)"
    )
    sim_tokens_per_second: float = Field(
        default=50.0, ge=0, description="simulated provider: token rate (0 = no delay)"
    )

    openai_base_url: str = Field(
        default="https://api.openai.com/v1",
        validation_alias=AliasChoices(
            "TASKLOOM_OPENAI_BASE_URL", "OPENAI_BASE_URL", "openai_base_url"
        ),
        description="base URL of an OpenAI-compatible chat completions API (OpenAI, vLLM, "
        "Ollama, llama.cpp server, OpenRouter)",
    )
    openai_api_key: SecretStr = Field(
        default=SecretStr(""),
        validation_alias=AliasChoices(
            "TASKLOOM_OPENAI_API_KEY", "OPENAI_API_KEY", "openai_api_key"
        ),
        description="API key of the OpenAI-compatible API, read from the environment only",
    )
    llm_timeout_s: float = Field(default=120.0, gt=0, description="deadline of each LLM call")
    llm_max_retries: int = Field(
        default=3, ge=0, description="retries of a failed LLM call (429, 5xx, network)"
    )

    agents_reload: bool = Field(
        default=True,
        description="reload agent files from --agents-dir when they change (a bad file is "
        "refused and the previous definition kept)",
    )
    max_parallel_tool_calls: int = Field(
        default=8, ge=1, le=256, description="tool calls of one LLM turn that run at once"
    )
    agent_max_depth: int = Field(
        default=5, ge=1, le=50, description="deepest chain of agents calling agents"
    )
    sandbox_bwrap: str = Field(
        default="bwrap", description="the bubblewrap program of the python tool's sandbox"
    )
    sandbox_python: str = Field(
        default="/usr/bin/python3",
        description="the interpreter the python tool runs in its sandbox (a system one, "
        "readable by the sandbox user)",
    )
    sandbox_pool_size: int = Field(
        default=2, ge=0, le=64, description="sandboxes kept started for the python tool"
    )
    sandbox_tmpfs_mb: int = Field(
        default=16, ge=1, le=4096, description="size of a sandbox's working dir and /tmp"
    )
    sandbox_unsandboxed: bool = Field(
        default=False,
        description="DEVELOPMENT ONLY: run the python tool without bubblewrap (no isolation; "
        "a loud warning at every sandbox start)",
    )

    stream_buffer_size: int = Field(
        default=256,
        ge=0,
        le=1 << 20,
        description="streamed text is sent once this many bytes are buffered (0 = every piece)",
    )
    stream_flush_interval_ms: float = Field(
        default=25.0,
        ge=0,
        le=10_000,
        description="...or once the first buffered piece is this old (0 = every piece)",
    )

    @field_validator("agents_dir", mode="before")
    @classmethod
    def _split_dirs(cls, value: object) -> object:
        if isinstance(value, str):
            return [part for part in value.split(os.pathsep) if part]
        return value

    def check(self) -> None:
        """`--check-config` also reads the agent catalog the settings name."""
        try:
            load_catalog(self.agents_dir)
        except CatalogError as err:
            raise config.ConfigError(f"agents_dir: {err}") from err


def env_names(name: str) -> list[str]:
    """The environment variables a setting reads, in order of precedence."""
    return Settings.env_names(name)


def load_settings(argv: Sequence[str] | None = None) -> Settings:
    """The settings from every layer; exits on `--help`, `--check-config` or a bad setting."""
    return config.load(Settings, argv, prog="python -m taskloom.agents")
