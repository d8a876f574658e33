"""Settings: TASKLOOM_* environment variables, flags and the API key list."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from pydantic_settings import CliApp

from taskloom.gateway.config import Settings


def test_env_vars_configure_the_gateway(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKLOOM_ORCHESTRATOR_ADDR", "orch:1234")
    monkeypatch.setenv("TASKLOOM_API_KEYS", "k1=tenant-a, k2=tenant-b")
    settings = Settings()
    assert settings.orchestrator_addr == "orch:1234"
    assert settings.api_keys == {"k1": "tenant-a", "k2": "tenant-b"}
    assert settings.auth_enabled
    assert "k1" not in str(settings.masked())


def test_flags_override_defaults() -> None:
    settings = CliApp.run(
        Settings, cli_args=["--http-addr", "0.0.0.0:9000", "--log-level", "debug"]
    )
    assert settings.http_host_port == ("0.0.0.0", 9000)
    assert settings.log_level == "debug"
    assert not settings.auth_enabled


def test_malformed_api_keys_are_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKLOOM_API_KEYS", "just-a-key")
    with pytest.raises(ValidationError, match="KEY=TENANT"):
        Settings()
