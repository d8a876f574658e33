"""Settings: TASKLOOM_* environment variables, flags and the API key list."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from pydantic_settings import CliApp

from taskloom.gateway.__main__ import graceful_shutdown_timeout, uvicorn_config
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


@pytest.mark.parametrize(("grace", "timeout"), [(5.0, 5.0), (0.5, 0.5), (0.0, 0.0)])
def test_shutdown_grace_is_passed_to_uvicorn_as_given(grace: float, timeout: float) -> None:
    # None would make uvicorn wait for open requests forever; 0 cancels them at once.
    assert graceful_shutdown_timeout(grace) == timeout
    config = uvicorn_config(Settings(shutdown_grace_seconds=grace))
    assert config.timeout_graceful_shutdown == timeout
    assert config.timeout_graceful_shutdown is not None
