"""The local stack launcher: what it passes to the services, and children that outlive the
thread that started them."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import httpx

from taskloom.sdk.localstack import (
    Service,
    Stack,
    StackConfig,
    free_port,
    passed_settings,
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
