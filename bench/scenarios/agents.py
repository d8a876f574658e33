"""Scenario `agents`: the cost of the agent loop, the worker's concurrency, and the python
sandbox.

- `tool_iteration_overhead_us`: the agent runtime in process, on the simulated LLM with no
  latency, running tasks of ITERATIONS turns that each call a no-op (async) Python tool;
  the time per turn beyond a task that answers at once (one turn, no tool), less the time
  spent inside the simulated LLM. The journal (durable turns) is not in this figure yet.
- `concurrent_1000_makespan_s`: the real orchestrator and one worker process (concurrency
  1,000); 1,000 tasks whose simulated LLM takes 1 s, submitted in one batch; from the
  first task's creation to the last one's end, from the orchestrator's records; and the
  worker process's CPU time per task in that run (`worker_cpu_per_task_us`).
- `sandbox_python_p50_ms` / `_p99_ms`: a `python` tool call running `print(1)`, through
  the tool registry and the worker's pre-started sandbox pool, against the peer: a bare
  `bwrap … python3 -I -S -c 'print(1)'` with the same isolation, started per call.
Needs `make build` (for the orchestrator) and bubblewrap.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CollectorRegistry
from run import Result

from taskloom.agents.catalog import AgentSpec, Catalog
from taskloom.agents.metrics_reporter import MetricsReporter
from taskloom.agents.providers import ToolCall
from taskloom.agents.providers.simulated import SimulatedProvider
from taskloom.agents.runtime import AgentRuntime
from taskloom.agents.telemetry import Telemetry
from taskloom.agents.tools import TaskInfo, ToolContext, ToolRegistry, builtin_factories
from taskloom.agents.tools.sandbox import SandboxConfig, SandboxPool, bwrap_argv, default_python
from taskloom.sdk.localstack import Ports, Stack, StackConfig

ROOT = Path(__file__).resolve().parents[2]
ITERATIONS = 8
LOOP_TASKS = 300
CONCURRENT_TASKS = 1000
SANDBOX_CALLS = 200


async def _noop() -> dict[str, bool]:
    # Async: a sync tool runs in a thread, and that hop is the tool's cost, not the loop's.
    return {"ok": True}


# The no-op tool, importable by the name the agent definition gives.
_TOOLS = types.ModuleType("taskloom_bench_tools")
_TOOLS.noop = _noop  # type: ignore[attr-defined]
sys.modules[_TOOLS.__name__] = _TOOLS


def _telemetry() -> Telemetry:
    return Telemetry(MetricsReporter(""), registry=CollectorRegistry())


class TimedProvider:
    """The simulated provider, adding up the time spent inside it (the LLM's own time)."""

    name = "simulated"

    def __init__(self) -> None:
        self._inner = SimulatedProvider(latency_s=0, tokens_per_second=0)
        self.seconds = 0.0

    async def stream(self, *args: Any) -> AsyncIterator[Any]:
        events = self._inner.stream(*args)
        while True:
            start = time.perf_counter()
            try:
                event = await anext(events)
            except StopAsyncIteration:
                self.seconds += time.perf_counter() - start
                return
            self.seconds += time.perf_counter() - start
            yield event

    async def aclose(self) -> None:
        return None


async def _loop_seconds(
    runtime: AgentRuntime, provider: TimedProvider, script: list[dict[str, Any]]
) -> float:
    """Time of LOOP_TASKS runs of the script, less the time spent in the simulated LLM."""

    async def on_event(event: object) -> None:
        return None

    task_input = {"prompt": "go", "simulate": {"script": script}}
    provider.seconds = 0.0
    start = time.perf_counter()
    for _ in range(LOOP_TASKS):
        await runtime.run("looper", task_input, on_event, TaskInfo("t", "looper"))
    return time.perf_counter() - start - provider.seconds


def measure_iteration_overhead_us() -> float:
    spec = AgentSpec.model_validate(
        {
            "name": "looper",
            "model": "sim-1",
            "cache": False,
            "max_iterations": ITERATIONS + 1,
            "tools": [
                {
                    "name": "noop",
                    "function": "taskloom_bench_tools:noop",
                    "description": "does nothing",
                    "parameters": {"type": "object"},
                }
            ],
        }
    )
    provider = TimedProvider()
    runtime = AgentRuntime(
        Catalog([spec]), {"simulated": provider}, _telemetry(), tools=ToolRegistry()
    )
    looping = [{"tool_calls": [{"name": "noop", "arguments": {}}]}] * ITERATIONS
    answer = [{"text": "done"}]

    async def measure() -> float:
        await _loop_seconds(runtime, provider, looping + answer)  # warm up (imports, caches)
        with_tools = await _loop_seconds(runtime, provider, looping + answer)
        plain = await _loop_seconds(runtime, provider, answer)
        return (with_tools - plain) / (LOOP_TASKS * ITERATIONS)

    return asyncio.run(measure()) * 1e6


def measure_concurrent_makespan_s() -> tuple[float, int, float]:
    """Makespan of CONCURRENT_TASKS 1-second tasks on one worker, how many succeeded, and
    the worker's CPU time per task (µs)."""
    import grpc

    from taskloom.v1 import common_pb2, orchestrator_pb2, orchestrator_pb2_grpc

    state = Path(tempfile.mkdtemp(prefix="bench-agents-"))
    cfg = StackConfig(
        bin_dir=ROOT / "bin",
        state_dir=state,
        ports=Ports.random(),
        only=("orchestrator", "worker"),
        ready_path="/readyz",
        env_overrides={
            "worker": {
                "TASKLOOM_CONCURRENCY": str(CONCURRENT_TASKS),
                "TASKLOOM_SIM_LATENCY_MS": "1000",
                "TASKLOOM_SIM_TOKENS_PER_SECOND": "0",
                "TASKLOOM_CACHE_ADDR": "",
                "TASKLOOM_METRICS_ADDR": "",
                "TASKLOOM_LOG_LEVEL": "warning",
            },
            "orchestrator": {"TASKLOOM_LOG_LEVEL": "warn"},
        },
    )
    with (
        Stack(cfg) as stack,
        grpc.insecure_channel(f"127.0.0.1:{stack.cfg.ports.orchestrator_grpc}") as channel,
    ):
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
        specs = [
            common_pb2.TaskSpec(agent="assistant", input=_string(f"task {i}"))
            for i in range(CONCURRENT_TASKS)
        ]
        worker_cpu = _cpu_seconds(stack.service("worker").process)
        submitted = stub.SubmitTasks(orchestrator_pb2.SubmitTasksRequest(tasks=specs))
        ids = [t.id for t in submitted.tasks]
        done: dict[str, Any] = {}
        deadline = time.monotonic() + 120
        while len(done) < len(ids) and time.monotonic() < deadline:
            time.sleep(0.5)
            for task_id in ids:
                if task_id in done:
                    continue
                task = stub.GetTask(orchestrator_pb2.GetTaskRequest(id=task_id)).task
                if task.status >= common_pb2.TASK_STATUS_SUCCEEDED:
                    done[task_id] = task
                else:
                    break  # ids are in submit order; check the rest next round
        worker_cpu = _cpu_seconds(stack.service("worker").process) - worker_cpu
    if len(done) < len(ids):
        raise RuntimeError(f"only {len(done)} of {len(ids)} tasks finished in time")
    first = min(t.created_at.ToNanoseconds() for t in done.values())
    last = max(t.finished_at.ToNanoseconds() for t in done.values())
    succeeded = sum(t.status == common_pb2.TASK_STATUS_SUCCEEDED for t in done.values())
    return (last - first) / 1e9, succeeded, worker_cpu / CONCURRENT_TASKS * 1e6


def _cpu_seconds(process: Any) -> float:
    """User and system CPU time of a running process, from /proc."""
    fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _string(text: str) -> Any:
    from google.protobuf import struct_pb2

    return struct_pb2.Value(string_value=text)


def _quantiles(samples_ms: list[float]) -> tuple[float, float]:
    ordered = sorted(samples_ms)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return round(statistics.median(ordered), 2), round(p99, 2)


def measure_sandbox_ms() -> tuple[float, float]:
    spec = AgentSpec.model_validate({"name": "coder", "model": "sim-1", "tools": ["python"]})

    async def measure() -> list[float]:
        pool = SandboxPool(SandboxConfig(python=default_python(), pool_size=2))
        toolset = ToolRegistry(builtin_factories(sandbox=pool)).toolset(spec)
        call = ToolCall("c", "python", orjson.dumps({"code": "print(1)"}).decode())
        context = ToolContext(TaskInfo("t", "coder"))
        samples = []
        try:
            await pool.start()
            for i in range(SANDBOX_CALLS + 10):
                await asyncio.sleep(0.05)  # calls arrive spread out, as from an LLM
                start = time.perf_counter()
                [outcome] = await toolset.execute([call], context)
                elapsed = (time.perf_counter() - start) * 1000
                if not outcome.ok or orjson.loads(outcome.content)["stdout"] != "1\n":
                    raise RuntimeError(f"sandbox call failed: {outcome.content}")
                if i >= 10:  # warm-up
                    samples.append(elapsed)
        finally:
            await pool.aclose()
        return samples

    return _quantiles(asyncio.run(measure()))


def measure_bare_bwrap_ms() -> tuple[float, float]:
    """The peer: the same isolation, one bwrap per call, no pool."""
    argv = bwrap_argv(SandboxConfig(), default_python())
    argv = [*argv[: argv.index("-c") + 1], "print(1)"]
    if os.geteuid() == 0:
        argv = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "--", *argv]
    samples = []
    for i in range(SANDBOX_CALLS + 10):
        time.sleep(0.05)
        start = time.perf_counter()
        out = subprocess.run(argv, capture_output=True, env={"PATH": "/usr/bin:/bin"}, check=True)
        elapsed = (time.perf_counter() - start) * 1000
        if out.stdout != b"1\n":
            raise RuntimeError(f"bare bwrap failed: {out.stderr!r}")
        if i >= 10:
            samples.append(elapsed)
    return _quantiles(samples)


def run() -> list[Result]:
    overhead = measure_iteration_overhead_us()
    makespan, succeeded, cpu_per_task_us = measure_concurrent_makespan_s()
    sandbox_p50, sandbox_p99 = measure_sandbox_ms()
    bare_p50, bare_p99 = measure_bare_bwrap_ms()
    if succeeded != CONCURRENT_TASKS:
        print(f"agents: {CONCURRENT_TASKS - succeeded} tasks did not succeed", file=sys.stderr)
    peer = "bare bwrap + python3 -I -S"
    return [
        Result("tool_iteration_overhead_us", round(overhead, 1), "us", "lower"),
        Result("concurrent_1000_makespan_s", round(makespan, 3), "s", "lower"),
        Result("worker_cpu_per_task_us", round(cpu_per_task_us), "us", "lower"),
        Result("sandbox_python_p50_ms", sandbox_p50, "ms", "lower", peer=peer, peer_value=bare_p50),
        Result("sandbox_python_p99_ms", sandbox_p99, "ms", "lower", peer=peer, peer_value=bare_p99),
    ]
