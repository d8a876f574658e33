"""Scenario `memory`: the whole stack's resident memory (the sum of every process's RSS:
one orchestrator, one gateway process, one worker, cache, metrics and vector).

- `idle_stack_rss_mb`: as `make up` starts it (its defaults, optional models not
  loaded), every service ready, after a few seconds of rest; a row per service too.
- `rss_10k_running_mb`: while 10,000 simulated tasks run at once (each holds its
  simulated call for a minute), submitted over gRPC in batches of 1,000, on three
  workers of 3,334 credits each: the orchestrator lets one worker hold at most 4,096
  credits (scheduler.Config.MaxCredits), so one worker cannot run 10,000.
"""

from __future__ import annotations

import time

import progress
import stack
from run import Result

SETTLE_S = 5.0
RUNNING = 10_000
BUSY_WORKERS = 3  # one worker runs at most 4,096 (taskloom.v1.Register.concurrency)
HOLD_MS = 60_000


def run(quick: bool = False) -> list[Result]:
    with progress.phases("memory", 2) as phase:
        phase("idle stack")
        with stack.running(workers=1, llm_cache=True, bench_agents=False) as s:
            time.sleep(SETTLE_S)
            idle = stack.stack_rss_mb(s)
        phase(f"{RUNNING:,} tasks running")
        worker_env = {
            "TASKLOOM_SIM_LATENCY_MS": str(HOLD_MS),
            "TASKLOOM_SIM_TOKENS_PER_SECOND": "0",
            "TASKLOOM_CONCURRENCY": str(-(-RUNNING // BUSY_WORKERS)),
            "TASKLOOM_DRAIN_TIMEOUT_S": "0",  # stop at once: nothing to wait for afterwards
        }
        with stack.running(workers=BUSY_WORKERS, worker_env=worker_env) as s:
            _run_at_once(s, RUNNING)
            busy = stack.stack_rss_mb(s)
    results = [
        Result(
            "idle_stack_rss_mb", round(sum(idle.values()), 1), "MB", "lower", goal="value <= 205"
        ),
        Result("rss_10k_running_mb", round(sum(busy.values()), 1), "MB", "lower"),
    ]
    results += [
        Result(f"idle_rss_{name}_mb", round(mb, 1), "MB", "lower")
        for name, mb in sorted(idle.items())
    ]
    return results


def _run_at_once(s: stack.Stack, n: int, timeout: float = 300) -> None:
    """Submits n tasks of the bench's no-op agent and waits until all of them run."""
    with stack.orchestrator(s) as orch:
        stack.submit_noop(orch, n)
    running = "taskloom_orchestrator_tasks_running"
    stack.await_metric(s, running, n, "tasks running", timeout)
