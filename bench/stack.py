"""The Taskloom stack as the scenarios run it: `make up`'s launcher (taskloom.sdk.localstack)
on free ports in a temp directory, with the bench's settings, and what scenarios read
from it: addresses, gRPC stubs, the processes' memory, the orchestrator's metrics."""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import progress
from google.protobuf import struct_pb2
from prometheus_client.parser import text_string_to_metric_families

from taskloom.sdk.localstack import Ports, Stack, StackConfig
from taskloom.v1 import common_pb2, orchestrator_pb2, orchestrator_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / "bin"
AGENTS_DIR = Path(__file__).resolve().parent / "agents"

# The simulated provider with no delay at all: latency 0, token rate 0.
NO_DELAY = {"TASKLOOM_SIM_LATENCY_MS": "0", "TASKLOOM_SIM_TOKENS_PER_SECOND": "0"}
# Every service logs warnings and errors only, as the peers do (Celery --loglevel warning);
# the Go and Rust services spell the level "warn", the Python ones "warning".
LOG_LEVEL = "warning"
NATIVE_LOG_LEVEL = {"TASKLOOM_LOG_LEVEL": "warn"}
NATIVE_SERVICES = ("orchestrator", "cache", "metrics", "vector")
# The bench's no-op agent (bench/agents/bench-noop.yaml), and how many of its tasks go
# into one SubmitTasks.
NOOP_AGENT = "bench-noop"
SUBMIT_BATCH = 1_000


def worker_names(workers: int) -> list[str]:
    """The launcher's names of the worker services."""
    return ["worker"] if workers == 1 else [f"worker-{i + 1}" for i in range(workers)]


@contextlib.contextmanager
def running(
    *,
    workers: int = 1,
    worker_env: dict[str, str] | None = None,
    orchestrator_env: dict[str, str] | None = None,
    llm_cache: bool = False,
    bench_agents: bool = True,
) -> Iterator[Stack]:
    """The whole stack, every service ready. Workers load bench/agents/ too (unless not
    bench_agents), and the LLM cache is off unless llm_cache (the worker is given no
    cache address)."""
    if not (BIN / "taskloom-orchestrator").exists():
        raise RuntimeError(f"{BIN} has no binaries: run `make build` first")
    per_worker = dict(worker_env or {})
    if bench_agents:
        per_worker["TASKLOOM_AGENTS_DIR"] = str(AGENTS_DIR)
    if not llm_cache:
        per_worker["TASKLOOM_CACHE_ADDR"] = ""
    overrides = {name: dict(per_worker) for name in worker_names(workers)}
    overrides.update({name: dict(NATIVE_LOG_LEVEL) for name in NATIVE_SERVICES})
    overrides["orchestrator"].update(orchestrator_env or {})
    with tempfile.TemporaryDirectory(prefix="bench-stack-") as state_dir:
        cfg = StackConfig(
            bin_dir=BIN,
            state_dir=Path(state_dir),
            ports=Ports.random(),
            workers=workers,
            user_env={"TASKLOOM_LOG_LEVEL": LOG_LEVEL},
            env_overrides=overrides,
        )
        with Stack(cfg) as stack:
            yield stack


def grpc_addr(stack: Stack) -> str:
    return f"127.0.0.1:{stack.service('orchestrator').grpc_port}"


@contextlib.contextmanager
def orchestrator(stack: Stack) -> Iterator[orchestrator_pb2_grpc.OrchestratorServiceStub]:
    """A gRPC stub of the stack's orchestrator, on a channel closed afterwards."""
    with grpc.insecure_channel(grpc_addr(stack)) as channel:
        yield orchestrator_pb2_grpc.OrchestratorServiceStub(channel)


def rss_mb(pid: int) -> float:
    """A process's resident memory (VmRSS), MB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"process {pid} has no VmRSS")


def stack_rss_mb(stack: Stack) -> dict[str, float]:
    """Every running service's RSS, MB, by service name."""
    out = {}
    for svc in stack.services:
        if svc.process is not None and svc.process.poll() is None:
            out[svc.name] = rss_mb(svc.process.pid)
    return out


def orchestrator_metric(stack: Stack, name: str, **labels: str) -> float:
    """The sum of the orchestrator's samples of a metric matching the labels (0 if none)."""
    text = httpx.get(f"{stack.service('orchestrator').base_url}/metrics", timeout=10).text
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def submit_noop(orch: orchestrator_pb2_grpc.OrchestratorServiceStub, n: int) -> None:
    """Submits n tasks of the no-op agent over gRPC, SUBMIT_BATCH per SubmitTasks."""
    spec = common_pb2.TaskSpec(agent=NOOP_AGENT, input=struct_pb2.Value(string_value="go"))
    for offset in range(0, n, SUBMIT_BATCH):
        request = orchestrator_pb2.SubmitTasksRequest(tasks=[spec] * min(SUBMIT_BATCH, n - offset))
        orch.SubmitTasks(request, timeout=60)


def await_metric(
    stack: Stack, name: str, total: int, desc: str, timeout: float, **labels: str
) -> None:
    """Waits, with a progress bar, until the orchestrator's metric (summed over the
    samples matching labels) reaches total; TimeoutError after timeout seconds."""
    deadline = time.monotonic() + timeout
    with progress.bar(total, desc, unit="task") as bar:
        while bar.n < total:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{desc}: {bar.n} of {total} within {timeout} s")
            time.sleep(0.05)
            bar.update(max(0, int(orchestrator_metric(stack, name, **labels)) - bar.n))
