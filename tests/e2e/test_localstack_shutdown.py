"""Ctrl-C on `make up` (the localstack launcher) leaves no process of the stack behind."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from taskloom.testing.launcher import run_launcher

BIN = Path(__file__).resolve().parents[2] / "bin"


def alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    if not stat.exists():
        return False
    # A zombie has exited; only its parent's bookkeeping is left.
    return stat.read_text().split(") ")[-1].split()[0] != "Z"


@pytest.mark.usefixtures("local_processes")
def test_ctrl_c_stops_every_process(tmp_path: Path) -> None:
    with run_launcher(BIN, tmp_path) as (launcher, output):
        state = json.loads((tmp_path / "stack.json").read_text())
        pids = [entry["pid"] for entry in state.values()]
        assert len(pids) == 6 and all(alive(pid) for pid in pids)

        launcher.send_signal(signal.SIGINT)
        # 0 only when every service drained and exited 0 on its SIGTERM.
        rest, _ = launcher.communicate(timeout=60)
        assert launcher.returncode == 0, output + rest
        lingering = [pid for pid in pids if alive(pid)]
        assert lingering == [], f"still running: {lingering}"
