"""Runs bin/taskloom-loadgen (the Go load generator, services/orchestrator-go/internal/
loadgen) and returns its JSON report: against a fresh orchestrator it spawns, or
against a running stack's orchestrator whose workers run the work."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ORCHESTRATOR = ROOT / "bin" / "taskloom-orchestrator"
LOADGEN = ROOT / "bin" / "taskloom-loadgen"


def check_binaries() -> None:
    for binary in (ORCHESTRATOR, LOADGEN):
        if not binary.exists():
            raise RuntimeError(f"{binary} is missing: run `make build-go` first")


def spawned(mode: str, *args: str, store: str = "bolt", timeout: float = 900) -> dict[str, Any]:
    """One mode against a freshly spawned orchestrator (default store, temp data dir)."""
    check_binaries()
    return run(
        mode, "--spawn", str(ORCHESTRATOR), f"--spawn-arg=--store={store}", *args, timeout=timeout
    )


def against(addr: str, mode: str, *args: str, timeout: float = 900) -> dict[str, Any]:
    """One mode against the orchestrator at addr."""
    check_binaries()
    return run(mode, "--addr", addr, *args, timeout=timeout)


def run(mode: str, *args: str, timeout: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-loadgen-") as tmp:
        out = Path(tmp) / "report.json"
        cmd = [str(LOADGEN), "--mode", mode, "--json", str(out), *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        if not out.exists():  # the run itself failed (exit 1 with a report means errors counted)
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
        report: dict[str, Any] = json.loads(out.read_text())
    if not report.get("ok", False):
        print(proc.stdout, end="", file=sys.stderr)
    return report


def workflow_runs(report: dict[str, Any], what: str = "run_latency") -> dict[str, float]:
    """The run latency summary of a workflow report; raises when the run had errors."""
    if not report["ok"] or not report["available"]:
        raise RuntimeError(
            "workflow run failed: "
            + "; ".join(report.get("notes", []) + report.get("error_samples", []))
        )
    summary: dict[str, float] = report["metrics"][what]
    return summary
