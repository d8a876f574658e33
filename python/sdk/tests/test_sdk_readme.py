"""The README's example runs as written, as its own process, against the real gateway."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_example_runs(base_url: str) -> None:
    (example,) = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    env = {**os.environ, "TASKLOOM_URL": base_url, "TASKLOOM_API_KEY": "k1"}
    done = subprocess.run(
        [sys.executable, "-c", example], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "chunk: hello",
        "chunk: from",
        "chunk: the",
        "chunk: SDK",
        "done: succeeded",
        "batch: [{'echo': '0'}, {'echo': '1'}, {'echo': '2'}]",
        "workflow: succeeded",
        "error: 404 TASK_NOT_FOUND",
    ]
