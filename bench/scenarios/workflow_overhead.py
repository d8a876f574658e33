"""Scenario `workflow-overhead`: what running a workflow costs the client, beside
LangGraph. Two shapes of no-op steps, run one at a time and timed as the client sees
them (submit -> the final event received on WatchWorkflow): a 3-step chain and a
5-way fan-out joined by a sixth step.

- Python workers (`chain3_run_p50_ms`, `chain3_run_p99_ms`, `fanout5_run_p50_ms`): the
  whole stack, one worker running the shipped `assistant` agent on the simulated
  provider with no delay (latency 0, token rate 0), LLM cache off, default durable
  store (bolt); the Go load generator is the client. `chain3_run_p50_ms_rest`: the
  same through the gateway (POST /v1/workflows, then its SSE events until `done`),
  with an httpx client.
- The engine's own cost (`chain3_run_p50_ms_core`): the Go load generator's workers
  against a fresh orchestrator on bolt; `_core_vs_memory` on the in-memory store.
- Peers: LangGraph's SqliteSaver (durable, like bolt) for the durable figures; LangGraph
  without a checkpointer for the in-memory one. Nodes do nothing.
"""

from __future__ import annotations

import json
import time

import httpx
import loadgen
import progress
import stack
from peers import env
from peers.process import run_script
from run import Result

RUNS = {True: 300, False: 5_000}  # per measurement, quick and full
WARMUP = {True: 50, False: 200}
REST_RUNS = {True: 100, False: 2_000}
PROMPT = {"prompt": "Summarise the benchmark in one line."}
PYTHON_AGENT = "assistant"


def run(quick: bool = False) -> list[Result]:
    runs, warmup = RUNS[quick], WARMUP[quick]
    with progress.phases("workflow-overhead", 9) as phase:
        phase("LangGraph+SQLite chain3")
        lg = _langgraph("chain3", "sqlite", runs, warmup)
        phase("LangGraph+SQLite fanout5")
        lg_fan = _langgraph("fanout5", "sqlite", runs, warmup)
        phase("LangGraph chain3, no checkpointer")
        lg_mem = _langgraph("chain3", "none", runs, warmup)

        core_args = ("--tasks", str(runs), "--warmup", str(warmup))
        phase("core chain3 (bolt)")
        core = loadgen.workflow_runs(loadgen.spawned("workflow", *core_args, "--shape", "chain3"))
        phase("core fanout5 (bolt)")
        core_fan = loadgen.workflow_runs(
            loadgen.spawned("workflow", *core_args, "--shape", "fanout5")
        )
        phase("core chain3 (memory)")
        core_mem = loadgen.workflow_runs(
            loadgen.spawned("workflow", *core_args, "--shape", "chain3", store="memory")
        )

        with stack.running(workers=1, worker_env=stack.NO_DELAY) as s:
            addr = stack.grpc_addr(s)
            py_args = (*core_args, "--external-workers", "--agent", PYTHON_AGENT)
            py_args += ("--input", json.dumps(PROMPT))
            phase("Python workers chain3")
            py = loadgen.workflow_runs(
                loadgen.against(addr, "workflow", *py_args, "--shape", "chain3")
            )
            phase("Python workers fanout5")
            py_fan = loadgen.workflow_runs(
                loadgen.against(addr, "workflow", *py_args, "--shape", "fanout5")
            )
            phase("REST chain3")
            rest = _rest_chain3(s.gateway_url, REST_RUNS[quick], warmup)

    sqlite, nockpt = "langgraph+sqlite", "langgraph (no checkpointer)"
    return [
        Result(
            "chain3_run_p50_ms", py["p50_ms"], "ms", "lower", sqlite, lg["p50_ms"], "ratio <= 1.0"
        ),
        Result("chain3_run_p99_ms", py["p99_ms"], "ms", "lower", sqlite, lg["p99_ms"]),
        Result("fanout5_run_p50_ms", py_fan["p50_ms"], "ms", "lower", sqlite, lg_fan["p50_ms"]),
        Result("chain3_run_p50_ms_rest", rest, "ms", "lower", sqlite, lg["p50_ms"]),
        Result(
            "chain3_run_p50_ms_core",
            core["p50_ms"],
            "ms",
            "lower",
            sqlite,
            lg["p50_ms"],
            "ratio <= 0.5",
        ),
        Result("chain3_run_p99_ms_core", core["p99_ms"], "ms", "lower", sqlite, lg["p99_ms"]),
        Result(
            "fanout5_run_p50_ms_core", core_fan["p50_ms"], "ms", "lower", sqlite, lg_fan["p50_ms"]
        ),
        Result(
            "chain3_run_p50_ms_core_vs_memory",
            core_mem["p50_ms"],
            "ms",
            "lower",
            nockpt,
            lg_mem["p50_ms"],
            "ratio <= 1.0",
        ),
    ]


def _langgraph(shape: str, checkpointer: str, runs: int, warmup: int) -> dict[str, float]:
    return run_script(
        env.python("langgraph"),
        "langgraph_peer.py",
        "runs",
        "--shape",
        shape,
        "--checkpointer",
        checkpointer,
        "--runs",
        str(runs),
        "--warmup",
        str(warmup),
    )


def _rest_chain3(gateway: str, runs: int, warmup: int) -> float:
    """p50 ms of a 3-step workflow through REST: POST sent -> `done` event received."""
    body = {
        "mode": "sequential",
        "steps": [{"id": f"step{i}", "agent": PYTHON_AGENT, "input": PROMPT} for i in (1, 2, 3)],
    }
    times: list[float] = []
    with httpx.Client(base_url=gateway, timeout=30) as http:
        for i in progress.each(range(warmup + runs), "REST chain3", unit="workflow"):
            start = time.perf_counter()
            resp = http.post("/v1/workflows", json=body)
            resp.raise_for_status()
            with http.stream("GET", f"/v1/workflows/{resp.json()['id']}/events") as events:
                events.raise_for_status()
                for line in events.iter_lines():
                    if line == "event: done":
                        break
                else:
                    raise RuntimeError("the workflow's event stream ended without `done`")
            if i >= warmup:
                times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return round(times[len(times) // 2], 3)
