"""The local stack launcher: what it passes to the services, and children that outlive the
thread that started them."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import httpx

from taskloom.sdk.localstack import (
    ENDPOINTS_ENV,
    Service,
    Stack,
    StackConfig,
    free_port,
    passed_settings,
    provider_keys,
    user_settings,
)

WAIT_S = 20.0  # generous: a broken launcher fails the test instead of hanging it


def test_the_users_settings_reach_every_service_under_what_the_launcher_assigns(
    tmp_path: Path,
) -> None:
    user = user_settings(
        {
            "TASKLOOM_AGENTS_DIR": "/srv/agents",
            "TASKLOOM_OPENAI_API_KEY": "sk-secret",
            "TASKLOOM_HTTP_ADDR": "0.0.0.0:1",  # the launcher assigns every address
            "TASKLOOM_WORKERS": "2",  # the launcher's own setting
            "TASKLOOM_CONFIG": "/etc/taskloom.yaml",
            "OPENAI_API_KEY": "not ours",
        }
    )
    assert set(user) == {"TASKLOOM_AGENTS_DIR", "TASKLOOM_OPENAI_API_KEY", "TASKLOOM_HTTP_ADDR"}
    config_file = tmp_path / "taskloom.yaml"
    cfg = StackConfig(bin_dir=tmp_path, state_dir=tmp_path, user_env=user, config_file=config_file)
    stack = Stack(cfg)
    for svc in stack.services:
        assert svc.env["TASKLOOM_AGENTS_DIR"] == "/srv/agents"
        assert svc.env["TASKLOOM_OPENAI_API_KEY"] == "sk-secret"
        assert svc.env["TASKLOOM_CONFIG"] == str(config_file)
        assert svc.env["TASKLOOM_HTTP_ADDR"] == f"127.0.0.1:{svc.http_port}"
        assert "OPENAI_API_KEY" not in svc.env

    printed = passed_settings(cfg)
    assert "TASKLOOM_AGENTS_DIR=/srv/agents" in printed
    assert "TASKLOOM_OPENAI_API_KEY=***" in printed
    assert f"TASKLOOM_CONFIG={config_file}" in printed
    assert "Not passed (the launcher assigns them): TASKLOOM_HTTP_ADDR" in printed
    assert "sk-secret" not in printed


def test_the_workers_get_the_variables_their_endpoints_keys_are_in(tmp_path: Path) -> None:
    config_file = tmp_path / "taskloom.yaml"
    config_file.write_text(
        "worker:\n  endpoints:\n"
        "    vllm: {kind: openai, base_url: 'http://h/v1', api_key_env: VLLM_TOKEN}\n"
        "    sim: {kind: simulated}\n"
    )
    environ = {
        "VLLM_TOKEN": "tok-vllm",
        "ANTHROPIC_API_KEY": "sk-ant",  # the implicit anthropic endpoint's
        "ROUTER_KEY": "sk-router",
        "OTHER_KEY": "not an endpoint's",
        "UNSET_KEY": "",
        ENDPOINTS_ENV: json.dumps(
            {
                "router": {
                    "kind": "openai",
                    "base_url": "http://r/v1",
                    "api_key_env": "ROUTER_KEY",
                },
                "gone": {"kind": "openai", "base_url": "http://g/v1", "api_key_env": "UNSET_KEY"},
            }
        ),
    }
    keys = provider_keys(environ, config_file)
    assert keys == {
        "ANTHROPIC_API_KEY": "sk-ant",
        "ROUTER_KEY": "sk-router",
        "VLLM_TOKEN": "tok-vllm",
    }

    cfg = StackConfig(bin_dir=tmp_path, state_dir=tmp_path, workers=2, provider_keys=keys)
    for svc in Stack(cfg).services:
        worker = svc.name.startswith("worker")
        assert (svc.env.get("VLLM_TOKEN") == "tok-vllm") is worker, svc.name
        assert "OTHER_KEY" not in svc.env
    printed = passed_settings(cfg)
    assert "  VLLM_TOKEN=***" in printed  # masked although its name does not say "key"
    assert "tok-vllm" not in printed and "sk-ant" not in printed


def test_an_unreadable_worker_configuration_passes_only_the_implicit_key(tmp_path: Path) -> None:
    broken = tmp_path / "taskloom.yaml"
    broken.write_text("worker: [not, a, mapping")
    environ = {"ANTHROPIC_API_KEY": "sk-ant", ENDPOINTS_ENV: "{not json"}
    assert provider_keys(environ, broken) == {"ANTHROPIC_API_KEY": "sk-ant"}
    assert provider_keys({}, tmp_path / "missing.yaml") == {}


def _thread_gone(thread: threading.Thread) -> bool:
    # The kernel sends the parent-death signal while the thread exits, before its entry
    # leaves /proc; join() may return a little earlier than that.
    return not Path(f"/proc/self/task/{thread.native_id}").exists()


def test_a_service_restarted_from_a_thread_outlives_the_thread(tmp_path: Path) -> None:
    # A stand-in service with the default SIGTERM disposition: the kernel's parent-death
    # signal kills it at once, so a launcher that ties it to the thread fails here every time
    # (Taskloom's own services catch SIGTERM and drain, which would only make it likely).
    site = tmp_path / "site"
    site.mkdir()
    (site / "readyz").write_text("ok")
    port = free_port()
    stack = Stack(StackConfig(bin_dir=tmp_path, state_dir=tmp_path / "state", only=()))
    stack.services = [
        Service(
            "probe",
            [
                sys.executable,
                "-m",
                "http.server",
                str(port),
                "--bind",
                "127.0.0.1",
                "-d",
                str(site),
            ],
            {"PATH": "/usr/bin:/bin"},
            port,
        )
    ]
    with stack:
        first = stack.service("probe").process
        assert first is not None
        worker = threading.Thread(target=stack.restart, args=("probe",))
        worker.start()
        worker.join(WAIT_S)
        deadline = time.monotonic() + WAIT_S
        while not _thread_gone(worker):
            assert time.monotonic() < deadline, "the restarting thread never ended"
            time.sleep(0.01)

        restarted = stack.service("probe").process
        assert restarted is not None and restarted.pid != first.pid
        assert first.poll() is not None  # the restart stopped the old process
        assert httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
        assert restarted.poll() is None
    assert restarted.returncode == -15  # ended by the stack's SIGTERM, after the check
