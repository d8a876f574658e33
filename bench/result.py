"""What a scenario reports: `Result` rows, the machine's facts, and the JSON file of
DESIGN.md §7 (`bench/results/<scenario>.json`) they are written to and read back from."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"

# A goal is "<subject> <op> <bound>": subject `ratio` (Taskloom over the peer) or
# `value`, op one of these.
GOAL_OPS = ("<=", ">=", "==")


@dataclass
class Result:
    """One figure of a scenario; `peer_value` is the peer's, measured in the same run."""

    metric: str
    value: float
    unit: str
    better: str  # "higher" | "lower"
    peer: str | None = None
    peer_value: float | None = None
    # The goal for this figure, e.g. "ratio <= 0.5" or "value == 0" (None: none).
    goal: str | None = None

    def __post_init__(self) -> None:
        if self.better not in ("higher", "lower"):
            raise ValueError(
                f"{self.metric}: better must be 'higher' or 'lower', not {self.better!r}"
            )
        if self.goal is not None:
            parse_goal(self.goal)

    @property
    def ratio(self) -> float | None:
        if self.peer_value in (None, 0):
            return None
        return round(self.value / self.peer_value, 3)


def parse_goal(goal: str) -> tuple[str, str, float]:
    """("ratio" | "value", op, bound) of a goal; ValueError names what is wrong."""
    parts = goal.split()
    if len(parts) != 3 or parts[0] not in ("ratio", "value") or parts[1] not in GOAL_OPS:
        raise ValueError(f"goal {goal!r} is not '<ratio|value> <{'|'.join(GOAL_OPS)}> <number>'")
    return parts[0], parts[1], float(parts[2])


def goal_met(goal: str, value: float, ratio: float | None) -> bool | None:
    """Whether the figure meets the goal; None when it cannot tell (no peer figure)."""
    subject, op, bound = parse_goal(goal)
    x = ratio if subject == "ratio" else value
    if x is None:
        return None
    if op == "<=":
        return x <= bound
    if op == ">=":
        return x >= bound
    return x == bound


def _version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "not found"
    return out.stdout.strip() or "not found"


def machine() -> dict[str, Any]:
    """The machine's facts: what the figures depend on besides the code."""
    cpu = "unknown"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with open("/proc/meminfo") as info:
        for line in info:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
                break
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": round(mem_kb / 2**20, 1),
        "kernel": platform.release(),
        "versions": {
            "python": platform.python_version(),
            "go": _version(["go", "env", "GOVERSION"]),
            "rustc": _version(["rustc", "--version"]),
        },
    }


def load_average() -> float:
    """The 1-minute load average: how busy the machine was (other engineers' builds)."""
    return round(os.getloadavg()[0], 2)


@dataclass
class Run:
    """How a scenario ran: quick or full, when, how long, and how loaded the machine was."""

    quick: bool
    started: float  # epoch seconds
    seconds: float
    load_before: float
    load_after: float

    def facts(self) -> dict[str, Any]:
        return {
            "mode": "quick" if self.quick else "full",
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(self.started)),
            "seconds": round(self.seconds, 1),
            "load_average_1m": {"before": self.load_before, "after": self.load_after},
        }


def write_json(scenario: str, results: list[Result], run: Run, path: Path) -> dict[str, Any]:
    """Writes the scenario's JSON (DESIGN.md §7, plus `goal` per row and the run's facts)."""
    doc = {
        "scenario": scenario,
        "machine": {**machine(), **run.facts()},
        "results": [{**asdict(r), "ratio": r.ratio} for r in results],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return doc


def read_all(directory: Path = RESULTS) -> list[dict[str, Any]]:
    """Every scenario's JSON in the directory, by scenario name."""
    docs = [json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))]
    return sorted(docs, key=lambda d: str(d.get("scenario", "")))
