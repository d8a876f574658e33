"""LLM endpoints: the named places an agent's calls go to, in one configuration (the
worker settings' `endpoints`). Each has a kind (`openai`, `anthropic`, `simulated`), a base
URL, the environment variable that holds its key, model aliases, prices, connection and
retry settings, rate limits, a circuit breaker and an optional fallback.

`provider: openai`, `provider: anthropic` and `provider: simulated` in an agent file keep
working: they name implicit endpoints built from the worker's older settings
(`TASKLOOM_OPENAI_BASE_URL`, ...) unless the configuration defines an endpoint of that name.
Everything here is validated at start, and every error names the endpoint and the field.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from taskloom.sdk.config import (
    ANTHROPIC_API_KEY_ENV,
    SECRET_FILE_SUFFIX,
    ConfigError,
    secret_from_environ,
)

ENDPOINT_NAME = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class EndpointKind(StrEnum):
    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    SIMULATED = "simulated"


class EndpointConfigError(ValueError):
    """The endpoint configuration is invalid; the message names the endpoint and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Price(_Strict):
    """USD per million tokens."""

    input: float = Field(ge=0, le=10_000)
    output: float = Field(ge=0, le=10_000)

    def cost_nano_usd(self, prompt_tokens: int, completion_tokens: int) -> int:
        """The cost in nano-USD (1e-9 USD): integers add up without drift in the rollups."""
        # USD per million tokens is nano-USD per token times 1000.
        return round(prompt_tokens * self.input * 1000 + completion_tokens * self.output * 1000)


class ConnectionSettings(_Strict):
    """The HTTP client of one endpoint."""

    pool_size: int = Field(default=100, ge=1, le=10_000, description="connections at most")
    keepalive: int = Field(default=20, ge=0, le=10_000, description="idle connections kept")
    keepalive_expiry_s: float = Field(default=30.0, gt=0, le=3600)
    http2: bool = Field(default=True, description="HTTP/2 where the server offers it (TLS)")
    connect_timeout_s: float = Field(default=10.0, gt=0, le=600)
    read_timeout_s: float = Field(default=120.0, gt=0, le=3600)
    total_timeout_s: float = Field(
        default=600.0, gt=0, le=86_400, description="one whole call, streaming included"
    )


class RetrySettings(_Strict):
    """Retries of a failed call (429, 5xx, network), before anything was streamed."""

    max_retries: int = Field(default=3, ge=0, le=20)
    initial_backoff_s: float = Field(default=0.5, ge=0, le=600)
    max_backoff_s: float = Field(default=20.0, ge=0, le=3600)


class RateLimit(_Strict):
    """One set of limits; 0 = no limit of that kind."""

    requests_per_second: float = Field(default=0, ge=0, le=1_000_000)
    tokens_per_minute: int = Field(default=0, ge=0, le=10_000_000_000)
    concurrent: int = Field(default=0, ge=0, le=100_000)
    burst: int = Field(
        default=1, ge=1, le=100_000, description="requests that may go at once above the rate"
    )

    @property
    def enabled(self) -> bool:
        return bool(self.requests_per_second or self.tokens_per_minute or self.concurrent)


class LimitSettings(RateLimit):
    """The endpoint's limits, and optional ones that apply to each tenant and each agent
    separately on this endpoint."""

    per_tenant: RateLimit = Field(default_factory=RateLimit)
    per_agent: RateLimit = Field(default_factory=RateLimit)
    max_wait_s: float = Field(
        default=10.0, ge=0, le=3600, description="how long a limited call waits before failing"
    )


class BreakerSettings(_Strict):
    """Opens after `failures` consecutive failures, or when at least `min_calls` calls in
    the last `window_s` failed at `failure_ratio` or more; after `cooldown_s` lets
    `half_open_probes` calls through, and closes when they succeed."""

    enabled: bool = True
    failures: int = Field(default=5, ge=1, le=10_000)
    failure_ratio: float = Field(default=0.5, gt=0, le=1)
    min_calls: int = Field(default=20, ge=1, le=1_000_000)
    window_s: float = Field(default=30.0, gt=0, le=86_400)
    cooldown_s: float = Field(default=15.0, gt=0, le=86_400)
    half_open_probes: int = Field(default=1, ge=1, le=1000)


class Fallback(_Strict):
    """Where calls go while this endpoint's breaker is open."""

    endpoint: str = Field(pattern=ENDPOINT_NAME)
    model: str = Field(default="", description="model on the fallback; empty = the same name")


class SimulatedFailures(_Strict):
    """Failure injection of a simulated endpoint: the share of calls that fail each way."""

    rate_429: float = Field(default=0, ge=0, le=1)
    rate_5xx: float = Field(default=0, ge=0, le=1)
    rate_hang: float = Field(default=0, ge=0, le=1)
    retry_after_s: float = Field(default=1.0, ge=0, le=3600)
    hang_s: float = Field(default=3600.0, ge=0, description="how long a hanging call hangs")
    seed: int | None = Field(default=None, description="fixes the sequence, for tests")

    @model_validator(mode="after")
    def _at_most_one(self) -> SimulatedFailures:
        if self.rate_429 + self.rate_5xx + self.rate_hang > 1:
            raise ValueError("rate_429 + rate_5xx + rate_hang must be at most 1")
        return self


class SimulatedSettings(_Strict):
    latency_ms: float | None = Field(default=None, ge=0, description="default: the worker's")
    tokens_per_second: float | None = Field(default=None, ge=0)
    failures: SimulatedFailures = Field(default_factory=SimulatedFailures)


class EndpointConfig(_Strict):
    """One named endpoint, as written under `worker: endpoints: NAME:`."""

    kind: EndpointKind
    base_url: str = Field(default="", pattern=r"^(https?://.+)?$")
    api_key_env: str | None = Field(
        default=None, pattern=ENV_NAME, description="the environment variable holding the key"
    )
    models: dict[str, str] = Field(default_factory=dict, description="alias -> model name")
    prices: dict[str, Price] = Field(
        default_factory=dict, description="model (or alias) -> USD per million tokens"
    )
    connection: ConnectionSettings = Field(default_factory=ConnectionSettings)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    breaker: BreakerSettings = Field(default_factory=BreakerSettings)
    fallback: Fallback | None = None
    simulated: SimulatedSettings = Field(default_factory=SimulatedSettings)
    anthropic_version: str = Field(default="2023-06-01", min_length=1)

    @model_validator(mode="after")
    def _url(self) -> EndpointConfig:
        if self.kind != EndpointKind.SIMULATED and not self.base_url:
            raise ValueError(f"base_url is required for a {self.kind.value} endpoint")
        return self

    def resolve_model(self, model: str) -> str:
        return self.models.get(model, model)

    def price(self, model: str) -> Price | None:
        """The price of a model by its name or alias (`*` prices every model not listed);
        None = unknown, and no cost is counted."""
        resolved = self.resolve_model(model)
        return self.prices.get(resolved) or self.prices.get(model) or self.prices.get("*")


@dataclass(frozen=True)
class Endpoint:
    """A validated endpoint with its key read from the environment."""

    name: str
    config: EndpointConfig
    api_key: SecretStr

    @property
    def kind(self) -> EndpointKind:
        return self.config.kind


def _problems(err: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '(endpoint)'}: {e['msg']}" for e in err.errors()
    )


def parse_endpoints(raw: Mapping[str, Any]) -> dict[str, EndpointConfig]:
    """Validate the `endpoints` setting; the error names the endpoint and the field."""
    parsed: dict[str, EndpointConfig] = {}
    for name, value in raw.items():
        if not isinstance(name, str) or not _valid_name(name):
            raise EndpointConfigError(
                f"endpoints: {name!r} is not a valid endpoint name (lower case letters, "
                "digits, '.', '_' and '-')"
            )
        if isinstance(value, EndpointConfig):
            parsed[name] = value
            continue
        try:
            parsed[name] = EndpointConfig.model_validate(value)
        except ValidationError as err:
            raise EndpointConfigError(f"endpoints.{name}: {_problems(err)}") from None
    return parsed


def _valid_name(name: str) -> bool:
    return re.fullmatch(ENDPOINT_NAME, name) is not None


@dataclass(frozen=True)
class ImplicitDefaults:
    """What the implicit `openai`, `anthropic` and `simulated` endpoints are built from."""

    openai_base_url: str = "https://api.openai.com/v1"
    openai_api_key: SecretStr = field(default_factory=lambda: SecretStr(""))
    anthropic_base_url: str = "https://api.anthropic.com/v1"
    anthropic_api_key_env: str = ANTHROPIC_API_KEY_ENV
    connection: ConnectionSettings = field(default_factory=ConnectionSettings)
    retry: RetrySettings = field(default_factory=RetrySettings)


def _key(environ: Mapping[str, str], env: str, where: str) -> str:
    """An API key from its variable or the file its _FILE variable names (a mounted secret)."""
    try:
        return secret_from_environ(environ, env)
    except ConfigError as err:
        raise EndpointConfigError(f"{where}: {err}") from None


def build_endpoints(
    configured: Mapping[str, EndpointConfig],
    used: Mapping[str, Iterable[str]],
    environ: Mapping[str, str],
    defaults: ImplicitDefaults | None = None,
) -> dict[str, Endpoint]:
    """Every endpoint this worker runs: the configured ones plus the implicit defaults.

    `used` maps each endpoint name the agents use to the agents that use it. Raises
    `EndpointConfigError` naming what is wrong: an agent naming an unknown endpoint, a
    key variable that is not set, a fallback to an unknown endpoint or a fallback chain
    that loops.
    """
    defaults = defaults or ImplicitDefaults()
    endpoints: dict[str, Endpoint] = {}
    for name, config in configured.items():
        key = ""
        if config.api_key_env:
            key = _key(environ, config.api_key_env, f"endpoints.{name}.api_key_env")
            if not key:
                raise EndpointConfigError(
                    f"endpoints.{name}.api_key_env: the environment variable "
                    f"{config.api_key_env} is not set (it should hold the endpoint's API key, "
                    f"or {config.api_key_env}{SECRET_FILE_SUFFIX} name a file that does)"
                )
        endpoints[name] = Endpoint(name, config, SecretStr(key))

    implicit = {
        EndpointKind.SIMULATED.value: Endpoint(
            EndpointKind.SIMULATED.value,
            # The simulated model is free: its cost is known to be zero.
            EndpointConfig(
                kind=EndpointKind.SIMULATED,
                prices={"*": Price(input=0, output=0)},
                breaker=BreakerSettings(enabled=False),
            ),
            SecretStr(""),
        ),
        EndpointKind.OPENAI.value: Endpoint(
            EndpointKind.OPENAI.value,
            EndpointConfig(
                kind=EndpointKind.OPENAI,
                base_url=defaults.openai_base_url,
                connection=defaults.connection,
                retry=defaults.retry,
            ),
            defaults.openai_api_key,
        ),
    }
    for name, endpoint in implicit.items():
        endpoints.setdefault(name, endpoint)
    anthropic = EndpointKind.ANTHROPIC.value
    if anthropic not in endpoints and anthropic in used:
        env = defaults.anthropic_api_key_env
        key = _key(environ, env, "provider 'anthropic'")
        if not key:
            agents = ", ".join(sorted(used[anthropic]))
            raise EndpointConfigError(
                f"provider 'anthropic' (used by {agents}): the environment variable {env} is "
                "not set; set it to the API key, or configure an endpoint named anthropic"
            )
        endpoints[anthropic] = Endpoint(
            anthropic,
            EndpointConfig(
                kind=EndpointKind.ANTHROPIC,
                base_url=defaults.anthropic_base_url,
                connection=defaults.connection,
                retry=defaults.retry,
            ),
            SecretStr(key),
        )

    for name, users in used.items():
        if name not in endpoints:
            raise EndpointConfigError(
                f"provider {name!r} (used by {', '.join(sorted(users))}) is not a configured "
                f"endpoint; the endpoints are {', '.join(sorted(endpoints))}"
            )
    for name, endpoint in endpoints.items():
        _check_fallback(name, endpoint.config, endpoints)
    return endpoints


def _check_fallback(name: str, config: EndpointConfig, endpoints: Mapping[str, Endpoint]) -> None:
    seen = [name]
    current = config
    while current.fallback is not None:
        target = current.fallback.endpoint
        if target not in endpoints:
            raise EndpointConfigError(
                f"endpoints.{seen[-1]}.fallback.endpoint: {target!r} is not a configured endpoint"
            )
        if target in seen:
            raise EndpointConfigError(
                f"endpoints.{name}.fallback: the fallbacks loop ({' -> '.join([*seen, target])})"
            )
        seen.append(target)
        current = endpoints[target].config
