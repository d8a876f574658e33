"""The gateway's one typed settings object, read in the layers of `taskloom.sdk.config`:
defaults, the `gateway:` section of the config file, `TASKLOOM_*` environment, flags.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, ClassVar, Literal

from limits import parse
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from taskloom.sdk import config
from taskloom.sdk.channel import OrchestratorAddresses
from taskloom.sdk.embeddings.settings import EmbeddingSettings


def parse_api_keys(raw: str) -> dict[str, str]:
    """Parse `key1=tenant-a,key2=tenant-b` into `{key: tenant}`."""
    keys: dict[str, str] = {}
    for item in raw.split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, tenant = item.partition("=")
        if not sep or not key.strip() or not tenant.strip():
            raise ValueError(f"API key entry {item[:4]}… must look like KEY=TENANT")
        keys[key.strip()] = tenant.strip()
    return keys


class Settings(config.ServiceSettings, EmbeddingSettings):
    """Taskloom's REST gateway in front of the orchestrator."""

    config_section: ClassVar[str] = "gateway"
    secret_fields: ClassVar[frozenset[str]] = frozenset({"api_keys"})

    http_addr: str = Field("127.0.0.1:8000", description="host:port the HTTP API listens on")
    orchestrator_addr: OrchestratorAddresses = Field(
        "127.0.0.1:50051",
        description="host:port of the orchestrator, or a comma-separated list of a leader and "
        "its standbys (calls go to whichever leads)",
    )
    metrics_addr: str = Field("127.0.0.1:50053", description="host:port of the metrics service")
    log_level: str = Field("info", description="debug, info, warning or error")
    api_keys: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description="static keys: KEY=TENANT pairs, comma separated (besides the orchestrator's)",
    )
    auth: Literal["auto", "on", "off"] = Field(
        "auto",
        description="require an API key: on, off, or auto (on when api_keys or "
        "orchestrator_token is set)",
    )
    orchestrator_token: SecretStr = Field(
        SecretStr(""),
        description="the orchestrator's service token, sent on every call; it lets the "
        "gateway act for its callers' tenants and verify the orchestrator's API keys",
    )
    key_cache_seconds: float = Field(
        10.0,
        ge=0,
        description="how long a key the orchestrator verified (or refused) is trusted "
        "without asking again: a revoked key stops working within this time",
    )
    key_rate_limit: str = Field(
        "", description='requests each API key may make, e.g. "100/second"; empty: unlimited'
    )
    tenant_rate_limit: str = Field(
        "", description='requests each tenant may make (all its keys), e.g. "1000/minute"'
    )
    redis_url: str = Field(
        "",
        description="Redis shared by every gateway process for the rate limits; "
        "empty: each process counts alone",
    )
    default_tenant: str = Field("default", description="tenant of requests when auth is off")
    sessions_redis_url: str = Field(
        "",
        description="the Redis the agent workers keep sessions in (their sessions_redis_url), "
        "for GET and DELETE /v1/sessions/{id}; empty = sessions off",
    )
    vector_addr: str = Field(
        "",
        description="host:port of the vector service, for /v1/collections (documents are "
        "embedded here with the embedder settings, which must match the workers'); "
        "empty = collections off",
    )
    grpc_timeout_seconds: float = Field(10.0, gt=0, description="deadline of each unary gRPC call")
    ready_timeout_seconds: float = Field(2.0, gt=0, description="deadline of the /readyz check")
    shutdown_grace_seconds: float = Field(
        5.0,
        ge=0,
        description="on SIGTERM, how long open requests may finish; 0 = cancel them at once",
    )

    @field_validator("key_rate_limit", "tenant_rate_limit")
    @classmethod
    def _rate(cls, value: str) -> str:
        if value:
            try:
                parse(value)
            except ValueError:
                raise ValueError(
                    f"{value!r} is not a rate such as 100/second or 1000/minute"
                ) from None
        return value

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_api_keys(cls, value: Any) -> Any:
        return parse_api_keys(value) if isinstance(value, str) else value

    @property
    def auth_enabled(self) -> bool:
        if self.auth != "auto":
            return self.auth == "on"
        return bool(self.api_keys) or bool(self.orchestrator_token.get_secret_value())

    @property
    def http_host_port(self) -> tuple[str, int]:
        host, _, port = self.http_addr.rpartition(":")
        return host.strip("[]") or "127.0.0.1", int(port)

    def printable(self) -> dict[str, Any]:
        """The settings as printed at start: API keys reduced to their count and tenants."""
        data = super().printable()
        data["api_keys"] = {
            "count": len(self.api_keys),
            "tenants": sorted(set(self.api_keys.values())),
        }
        return data


def load_settings(argv: Sequence[str] | None = None) -> Settings:
    """The settings from every layer; exits on `--help`, `--check-config` or a bad setting."""
    return config.load(Settings, argv, prog="taskloom-gateway")
