"""Ctrl-C on `make up` (the localstack launcher) leaves no process of the stack behind."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

BIN = Path(__file__).resolve().parents[2] / "bin"


def alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    if not stat.exists():
        return False
    # A zombie has exited; only its parent's bookkeeping is left.
    return stat.read_text().split(") ")[-1].split()[0] != "Z"


@pytest.mark.usefixtures("local_processes")
def test_ctrl_c_stops_every_process(tmp_path: Path) -> None:
    launcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "taskloom.sdk.localstack",
            "--bin-dir",
            str(BIN),
            "--state-dir",
            str(tmp_path),
            "--random-ports",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert launcher.stdout is not None
        output: list[str] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = launcher.stdout.readline()
            if not line:
                break
            output.append(line)
            if "Ctrl-C stops everything" in line:
                break
        assert any("Taskloom is up" in line for line in output), "".join(output)
        state = json.loads((tmp_path / "stack.json").read_text())
        pids = [entry["pid"] for entry in state.values()]
        assert len(pids) == 6 and all(alive(pid) for pid in pids)

        launcher.send_signal(signal.SIGINT)
        # 0 only when every service drained and exited 0 on its SIGTERM.
        rest, _ = launcher.communicate(timeout=60)
        assert launcher.returncode == 0, "".join(output) + rest
        lingering = [pid for pid in pids if alive(pid)]
        assert lingering == [], f"still running: {lingering}"
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
