"""Scenario `llm-workflows`: workflows of real length, where the engine should vanish
behind the LLM. Each workflow is 3 sequential steps, each one simulated LLM call of
50 ms (the simulated provider: latency 50 ms, token rate 0), run 1, 10 and 100 at a
time; the figure is the time above the 150 ms floor, as the client sees it (submit ->
the final event on WatchWorkflow, the Go load generator as the client).

Taskloom: the whole stack, two Python workers with credits for 100 concurrent steps
each, the shipped `assistant` agent, LLM cache off, default durable store. Peers:
LangGraph `ainvoke` of 3 nodes that each `await asyncio.sleep(0.05)` (no checkpointer),
and Celery chains of 3 tasks that each sleep 50 ms, on a Redis broker, one worker with
a thread per concurrent chain.
"""

from __future__ import annotations

import json

import loadgen
import progress
import stack
from peers import celery_peer, env
from peers.process import run_script
from run import Result

STEP_MS = 50
FLOOR_MS = 3 * STEP_MS
LEVELS = (1, 10, 100)
WORKFLOWS = {True: {1: 100, 10: 200, 100: 300}, False: {1: 1_000, 10: 1_000, 100: 1_000}}
WORKERS, CREDITS = 2, 100
PROMPT = {"prompt": "Draft one paragraph on durable queues."}


def run(quick: bool = False) -> list[Result]:
    counts = WORKFLOWS[quick]
    lg: dict[int, dict[str, float]] = {}
    tl: dict[int, dict[str, float]] = {}
    with progress.phases("llm-workflows", 2 * len(LEVELS) + 1) as phase:
        for c in LEVELS:
            phase(f"LangGraph ainvoke, {c} at a time")
            lg[c] = run_script(
                env.python("langgraph"),
                "langgraph_peer.py",
                "llm",
                "--concurrency",
                str(c),
                "--workflows",
                str(counts[c]),
                "--step-ms",
                str(STEP_MS),
            )
        phase("Celery chains, 1, 10 and 100 at a time")
        cel = celery_peer.chains(counts, STEP_MS)
        worker_env = {
            "TASKLOOM_SIM_LATENCY_MS": str(STEP_MS),
            "TASKLOOM_SIM_TOKENS_PER_SECOND": "0",
            "TASKLOOM_CONCURRENCY": str(CREDITS),
        }
        with stack.running(workers=WORKERS, worker_env=worker_env) as s:
            for c in LEVELS:
                phase(f"Taskloom, {c} at a time")
                report = loadgen.against(
                    stack.grpc_addr(s),
                    "workflow",
                    "--external-workers",
                    "--agent",
                    "assistant",
                    "--input",
                    json.dumps(PROMPT),
                    "--shape",
                    "chain3",
                    "--tasks",
                    str(counts[c]),
                    "--warmup",
                    str(min(2 * c, 50)),
                    "--submitters",
                    str(c),
                )
                tl[c] = loadgen.workflow_runs(report)

    results: list[Result] = []
    for c in LEVELS:
        for q in ("p50", "p99"):
            ours = round(tl[c][f"{q}_ms"] - FLOOR_MS, 3)
            goal = "value <= 7.5" if (c, q) == (100, "p99") else None
            results.append(
                Result(
                    f"over_floor_{q}_ms_c{c}",
                    ours,
                    "ms",
                    "lower",
                    "langgraph",
                    lg[c][f"{q}_ms"],
                    goal,
                )
            )
            results.append(
                Result(
                    f"over_floor_{q}_ms_c{c}_vs_celery",
                    ours,
                    "ms",
                    "lower",
                    "celery+redis",
                    cel[c][f"{q}_ms"],
                )
            )
    return results
