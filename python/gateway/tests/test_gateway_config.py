"""Settings: the config file, TASKLOOM_* environment variables, flags and the API key list."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from taskloom.gateway.__main__ import graceful_shutdown_timeout, uvicorn_config
from taskloom.gateway.config import Settings, load_settings


def test_env_vars_configure_the_gateway(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKLOOM_ORCHESTRATOR_ADDR", "orch:1234")
    monkeypatch.setenv("TASKLOOM_API_KEYS", "k1=tenant-a, k2=tenant-b")
    settings = Settings()
    assert settings.orchestrator_addr == "orch:1234"
    assert settings.api_keys == {"k1": "tenant-a", "k2": "tenant-b"}
    assert settings.auth_enabled
    assert "k1" not in str(settings.printable())
    assert settings.printable()["api_keys"] == {"count": 2, "tenants": ["tenant-a", "tenant-b"]}


def test_flags_override_defaults() -> None:
    settings = load_settings(["--http-addr", "0.0.0.0:9000", "--log-level", "debug"])
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


def test_api_keys_are_not_a_flag_but_may_be_a_mapping_in_the_file(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exited:
        load_settings(["--api-keys", "k1=acme"])
    assert exited.value.code == 2
    file = tmp_path / "taskloom.yaml"
    file.write_text("gateway:\n  api_keys: {k1: acme}\nworker:\n  concurrency: 2\n")
    assert load_settings(["--config", str(file)]).api_keys == {"k1": "acme"}


def _check_config(file: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKLOOM_")}
    return subprocess.run(
        [sys.executable, "-m", "taskloom.gateway", "--check-config", "--config", str(file)],
        env=env,
        capture_output=True,
        text=True,
    )


def test_check_config_validates_prints_and_exits(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("gateway:\n  http_addr: 127.0.0.1:8123\n  api_keys: k1=acme\n")
    run = _check_config(good)
    assert run.returncode == 0, run.stderr
    printed = json.loads(run.stdout)
    assert printed["http_addr"] == "127.0.0.1:8123"
    assert printed["api_keys"] == {"count": 1, "tenants": ["acme"]}
    assert "k1" not in run.stdout

    bad = tmp_path / "bad.yaml"
    bad.write_text("gateway:\n  grpc_timeout_seconds: -1\n")
    run = _check_config(bad)
    assert run.returncode == 2
    assert "grpc_timeout_seconds" in run.stderr
    assert "greater than 0" in run.stderr
