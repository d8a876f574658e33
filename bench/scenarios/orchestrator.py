"""Scenario `orchestrator`: the Go orchestrator driven over gRPC by bin/taskloom-loadgen.

Each measurement spawns a fresh orchestrator (default store, temp data dir, free
loopback ports) so memory figures are not mixed: throughput of no-op tasks (median of
a few runs, against Celery + Redis on the same number of tasks), scheduling and submit
latency to idle workers, RSS holding 100,000 queued tasks, 10,000 tasks running at
once for 1 s each, and the per-step overhead of 3-step sequential workflows.
Needs `make build-go` (make bench builds first).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from peers import celery_peer
from run import Result

ROOT = Path(__file__).resolve().parents[2]
ORCHESTRATOR = ROOT / "bin" / "taskloom-orchestrator"
LOADGEN = ROOT / "bin" / "taskloom-loadgen"

TASKS = 50_000  # no-op tasks per throughput run, for Taskloom and the peer alike
THROUGHPUT_RUNS = 3
QUEUED_TASKS = 100_000
RUNNING_TASKS = 10_000
WORKFLOWS = 200


def run() -> list[Result]:
    for binary in (ORCHESTRATOR, LOADGEN):
        if not binary.exists():
            raise RuntimeError(f"{binary} is missing: run `make build-go` first")
    spawn = _spawn_args()

    throughput = [
        _loadgen("throughput", spawn, "--tasks", str(TASKS)) for _ in range(THROUGHPUT_RUNS)
    ]
    latency = _loadgen("latency", spawn)
    queued = _loadgen("queued", spawn, "--tasks", str(QUEUED_TASKS))
    running = _loadgen("running", spawn, "--tasks", str(RUNNING_TASKS), "--hold", "1s")
    workflow = _loadgen("workflow", spawn, "--tasks", str(WORKFLOWS))

    peer = celery_peer.measure(TASKS)
    if peer.tasks_per_second is None:
        print(f"orchestrator: no celery+redis peer: {peer.reason}", file=sys.stderr)

    # The median run by throughput (THROUGHPUT_RUNS is odd).
    throughput.sort(key=lambda r: r["metrics"]["tasks_per_second"])
    median_run = throughput[len(throughput) // 2]
    tps = median_run["metrics"]["tasks_per_second"]
    lat = latency["metrics"]
    results = [
        Result(
            "tasks_per_second",
            round(tps, 1),
            "tasks/s",
            "higher",
            peer="celery+redis",
            peer_value=_round(peer.tasks_per_second),
        ),
        # Queue entry (after the durable write) -> assigned to an idle worker, from the
        # orchestrator's histogram: the upper bound of the quantile's bucket.
        Result("scheduling_latency_p50", _sched(lat, "p50"), "ms", "lower"),
        Result("scheduling_latency_p99", _sched(lat, "p99"), "ms", "lower"),
        # Task created (submit admitted) -> assignment received by the worker: includes
        # the durable write (group commit) and the gRPC hop.
        Result("submit_to_assign_latency_p50", lat["assign_latency"]["p50_ms"], "ms", "lower"),
        Result("submit_to_assign_latency_p99", lat["assign_latency"]["p99_ms"], "ms", "lower"),
        Result("submit_latency_p99", lat["submit_latency"]["p99_ms"], "ms", "lower"),
        # Queue wait while the throughput run keeps every worker busy, for contrast.
        Result(
            "scheduling_latency_p99_saturated",
            median_run["metrics"]["scheduling_latency"]["p99_ms"],
            "ms",
            "lower",
        ),
        Result("rss_100k_queued", queued["metrics"]["rss_mb"], "MB", "lower"),
        Result("running_10k_errors", _running_errors(running), "count", "lower"),
    ]
    if workflow["available"] and workflow["ok"]:
        results.append(
            Result(
                "workflow_step_overhead_p50",
                workflow["metrics"]["step_overhead"]["p50_ms"],
                "ms",
                "lower",
            )
        )
    else:
        print(
            "orchestrator: workflow_step_overhead_p50 skipped: "
            + "; ".join(workflow.get("notes", []) + workflow.get("error_samples", [])),
            file=sys.stderr,
        )
    return results


def _spawn_args() -> list[str]:
    """The orchestrator's flags for the bench: the embedded bolt store where the build has it."""
    usage = subprocess.run(
        [str(ORCHESTRATOR), "--help"], capture_output=True, text=True, check=False
    )
    has_store_flag = re.search(r"^\s*--?store\s", usage.stdout + usage.stderr, re.MULTILINE)
    return ["--spawn-arg=--store=bolt"] if has_store_flag else []


def _loadgen(mode: str, spawn: list[str], *args: str) -> dict:
    """Runs one loadgen mode against a freshly spawned orchestrator; returns its JSON report."""
    with tempfile.TemporaryDirectory(prefix="taskloom-bench-") as tmp:
        out = Path(tmp) / "report.json"
        cmd = [
            str(LOADGEN),
            "--mode",
            mode,
            "--spawn",
            str(ORCHESTRATOR),
            *spawn,
            "--json",
            str(out),
            *args,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, check=False)
        print(proc.stdout, end="", file=sys.stderr)
        if not out.exists():  # the run itself failed (exit 1 with a report means errors counted)
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return json.loads(out.read_text())


def _sched(latency: dict, quantile: str) -> float:
    """The orchestrator-histogram bound, or the task timestamps where /metrics had none."""
    if latency["queue_latency"]["count"]:
        return latency["queue_latency"][f"{quantile}_ms_at_most"]
    return latency["scheduling_latency"][f"{quantile}_ms"]


def _running_errors(report: dict) -> int:
    """Errors the loadgen saw plus tasks that never completed."""
    return report["errors"] + RUNNING_TASKS - report["metrics"]["completed"]


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
