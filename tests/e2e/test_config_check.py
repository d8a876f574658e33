"""`--check-config` of every Python service over one configuration file for the whole stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SERVICES = {"gateway": "taskloom.gateway", "worker": "taskloom.agents"}


def check(service: str, config: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TASKLOOM_")}
    return subprocess.run(
        [sys.executable, "-m", SERVICES[service], "--check-config", "--config", str(config)],
        env={**clean, **env},
        capture_output=True,
        text=True,
    )


def test_each_service_reads_its_own_section_of_one_file(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    agents.mkdir()
    config = tmp_path / "taskloom.yaml"
    config.write_text(
        "gateway:\n  http_addr: 127.0.0.1:8123\n"
        f"worker:\n  concurrency: 5\n  agents_dir: [{agents}]\n"
        "orchestrator:\n  max_queue: 10\n"
        "cache:\n  max_bytes: 1000\n"
    )
    gateway = check("gateway", config)
    assert gateway.returncode == 0, gateway.stderr
    assert json.loads(gateway.stdout)["http_addr"] == "127.0.0.1:8123"
    worker = check("worker", config, TASKLOOM_CONCURRENCY="6")
    assert worker.returncode == 0, worker.stderr
    printed = json.loads(worker.stdout)
    assert printed["concurrency"] == 6  # the environment over the file
    assert printed["agents_dir"] == [str(agents)]
    assert printed["config_file"] == str(config)


def test_a_bad_setting_is_named_and_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "taskloom.yaml"
    config.write_text("worker:\n  concurency: 5\n")
    run = check("worker", config)
    assert run.returncode == 2
    assert "worker.concurency is not a setting (did you mean concurrency?)" in run.stderr

    config.write_text(f"worker:\n  agents_dir: [{tmp_path / 'missing'}]\n")
    run = check("worker", config)
    assert run.returncode == 2
    assert "agents_dir" in run.stderr and "does not exist" in run.stderr


ORCHESTRATOR = Path(__file__).resolve().parents[2] / "bin" / "taskloom-orchestrator"


def check_orchestrator(config: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TASKLOOM_")}
    return subprocess.run(
        [ORCHESTRATOR, "--check-config", "--config", str(config)],
        env=clean,
        capture_output=True,
        text=True,
    )


def test_the_orchestrator_reads_its_own_section_of_the_same_file(tmp_path: Path) -> None:
    config = tmp_path / "taskloom.yaml"
    config.write_text(
        "gateway:\n  http_addr: 127.0.0.1:8123\norchestrator:\n  max_queue: 10\n"
        "cache:\n  max_bytes: 1000\n"
    )
    run = check_orchestrator(config)
    assert run.returncode == 0, run.stderr
    line = next(
        json.loads(raw) for raw in (run.stdout + run.stderr).splitlines() if '"config"' in raw
    )
    assert line["config"]["max_queue"] == 10


def test_go_and_python_agree_on_the_files_sections(tmp_path: Path) -> None:
    from taskloom.sdk.config import SECTIONS

    config = tmp_path / "taskloom.yaml"
    config.write_text("orchestrater:\n  max_queue: 10\n")
    run = check_orchestrator(config)
    assert run.returncode == 2
    listed = run.stderr.split("(have ", 1)[1].split(")", 1)[0].split(", ")
    assert sorted(listed) == sorted(SECTIONS)
