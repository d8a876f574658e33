"""Scenario `orchestrator`: the Go orchestrator driven over gRPC by bin/taskloom-loadgen.

Each measurement spawns a fresh orchestrator (default store, temp data dir, free
loopback ports) so memory figures are not mixed: throughput of no-op tasks (median of
a few runs, against Celery + Redis on the same number of tasks), scheduling and submit
latency to idle workers, RSS holding 100,000 queued tasks, 10,000 tasks running at
once for 1 s each, and the per-step overhead of 3-step sequential workflows.
Needs `make build-go` (make bench builds first).
"""

from __future__ import annotations

import loadgen
from peers import celery_peer
from run import Result

TASKS = {True: 10_000, False: 50_000}  # no-op tasks per throughput run, Taskloom and peer alike
THROUGHPUT_RUNS = 3
QUEUED_TASKS = 100_000
RUNNING_TASKS = 10_000
WORKFLOWS = 200


def run(quick: bool = False) -> list[Result]:
    tasks = TASKS[quick]
    throughput = [
        loadgen.spawned("throughput", "--tasks", str(tasks)) for _ in range(THROUGHPUT_RUNS)
    ]
    latency = loadgen.spawned("latency")
    queued = loadgen.spawned("queued", "--tasks", str(QUEUED_TASKS))
    running = loadgen.spawned("running", "--tasks", str(RUNNING_TASKS), "--hold", "1s")
    workflow = loadgen.spawned("workflow", "--tasks", str(WORKFLOWS))
    peer_tps = celery_peer.throughput(tasks)

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
            peer_value=round(peer_tps, 1),
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
    results.append(
        Result(
            "workflow_step_overhead_p50",
            loadgen.workflow_runs(workflow, "step_overhead")["p50_ms"],
            "ms",
            "lower",
        )
    )
    return results


def _sched(latency: dict, quantile: str) -> float:
    """The orchestrator-histogram bound, or the task timestamps where /metrics had none."""
    if latency["queue_latency"]["count"]:
        return latency["queue_latency"][f"{quantile}_ms_at_most"]
    return latency["scheduling_latency"][f"{quantile}_ms"]


def _running_errors(report: dict) -> int:
    """Errors the loadgen saw plus tasks that never completed."""
    return report["errors"] + RUNNING_TASKS - report["metrics"]["completed"]
