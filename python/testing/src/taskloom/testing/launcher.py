"""`make up`'s launcher (`python -m taskloom.sdk.localstack`) as a process, for tests."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

UP_S = 120.0  # generous: the whole stack starts on a loaded machine
BANNER_END = "Ctrl-C stops everything"


@contextlib.contextmanager
def run_launcher(
    bin_dir: Path, state_dir: Path, *args: str, env: Mapping[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Start the launcher on system-chosen ports and yield it with what it printed up to its
    banner; it is killed at the end if the test did not stop it."""
    argv = [sys.executable, "-m", "taskloom.sdk.localstack", "--bin-dir", str(bin_dir)]
    argv += ["--state-dir", str(state_dir), "--random-ports", *args]
    launcher = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        assert launcher.stdout is not None
        output: list[str] = []
        deadline = time.monotonic() + UP_S
        while time.monotonic() < deadline:
            line = launcher.stdout.readline()
            if not line:
                break
            output.append(line)
            if BANNER_END in line:
                break
        assert any("Taskloom is up" in line for line in output), "".join(output)
        yield launcher, "".join(output)
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
