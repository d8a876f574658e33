"""Scenario `e2e`: the path users take, REST gateway → orchestrator → two Python workers →
result, on the simulated provider with no delay (latency 0, token rate 0) and the LLM
cache off (the workers get no cache address), every input unique unless noted.

- `rest_submit_rps`: 202s per second from `hey` at 64 concurrent clients posting to
  `/v1/tasks` (hey sends one body, so these inputs are alike; with the cache off every
  one still runs the simulated LLM). Peer `bare-fastapi`: an endpoint answering 202 under
  the gateway's server settings (uvicorn, uvloop, httptools), same load.
  `gateway_cpu_us_per_request`: the gateway's CPU over that run per request.
- `rest_tasks_per_s`: the tasks of that run, from the first POST until the orchestrator
  counts them all finished. Peer `celery`: no-op Celery tasks through Redis with one
  worker process per core (bench/peers/celery_peer.py; submitted by its Python client,
  not through an HTTP endpoint).
- `rest_task_p50_ms` / `_p95_ms` / `_p99_ms`: at a fixed 200 tasks/s, POST sent → the
  task's `done` event received on its SSE stream, as the client sees it.
- `batch_tasks_per_s`: batches of 1,000 through gRPC `SubmitTasks`, from the first task's
  creation to the last one's end (the tasks' own timestamps);
  `worker_cpu_us_per_task` (both workers) and `orchestrator_cpu_us_per_task`: the
  processes' CPU (/proc) over that run per task.
- `messages_per_1000_tokens`: worker → orchestrator stream messages (the orchestrator's
  `worker_messages_total`) for one 1,000-token answer streamed at 1,000 tokens/s with
  the default coalescing; `coalescing_added_latency_p99_ms`: the p99, over a few such
  tasks, of submit → last text chunk at a gRPC watcher, less the same without
  coalescing (`stream.buffer_size` 0).
- `tracing_overhead_pct`: how much lower `rest_tasks_per_s` is with tracing on at a 10 %
  sampler (OTEL_TRACES_SAMPLER_ARG=0.1) exporting to a local OTLP receiver that discards
  the spans, than with tracing off, each on a fresh stack measured the same way one after
  the other; `tracing_overhead_pct_at_100`: the same with every trace sampled.

`make bench-full` runs longer (quick, `make bench`, keeps each part to seconds).
Needs `make build-go` and `hey` (Debian package `hey`, scripts/deps.sh).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, NamedTuple

import grpc
import httpx
import orjson
from peers import celery_peer
from run import Result

from taskloom.sdk.localstack import Ports, Stack, StackConfig, free_port
from taskloom.testing.tracing import OtlpReceiver
from taskloom.v1 import common_pb2, orchestrator_pb2, orchestrator_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]
BATCH = 1000
HEY_CLIENTS = 64
FIXED_RATE = 200  # tasks/s of the latency run
ANSWER_TOKENS = 1000


class Counts(NamedTuple):
    """How long each part runs: quick (`make bench`) or full (`make bench-full`)."""

    batches: int  # of BATCH tasks
    hey_seconds: int
    fixed_seconds: int  # at FIXED_RATE
    stream_runs: int
    celery_tasks: int


COUNTS = {
    True: Counts(batches=5, hey_seconds=4, fixed_seconds=3, stream_runs=3, celery_tasks=5_000),
    False: Counts(
        batches=20, hey_seconds=15, fixed_seconds=10, stream_runs=10, celery_tasks=20_000
    ),
}
WORKER_CONCURRENCY = 64
WAIT_S = 300.0


def run(quick: bool = True) -> list[Result]:
    counts = COUNTS[quick]
    if not (ROOT / "bin" / "taskloom-orchestrator").exists():
        raise RuntimeError("bin/taskloom-orchestrator is missing: run `make build-go` first")
    hey = shutil.which("hey")
    if hey is None:
        raise RuntimeError("hey is not on PATH: apt-get install hey (scripts/deps.sh)")
    state = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    agents = state / "agents"
    agents.mkdir()
    # The shipped assistant caps answers at 512 tokens; this one streams the 1,000.
    (agents / "streamer.yaml").write_text(
        "name: streamer\nprovider: simulated\nmodel: sim-1\nmax_tokens: 4096\ncache: false\n"
    )
    cfg = _stack_config(state, agents)
    with (
        Stack(cfg) as stack,
        grpc.insecure_channel(f"127.0.0.1:{cfg.ports.orchestrator_grpc}") as channel,
    ):
        e2e = _Path(stack, orchestrator_pb2_grpc.OrchestratorServiceStub(channel), counts)
        batch_tps, worker_us, orch_us = e2e.batch_run()
        _progress(f"batch {batch_tps:.0f} tasks/s, worker {worker_us:.0f} us/task")
        submit_rps, gateway_us, rest_tps = e2e.hey_run(hey)
        _progress(f"rest submit {submit_rps:.0f}/s, tasks {rest_tps:.0f}/s")
        p50, p95, p99 = asyncio.run(e2e.fixed_rate_latencies())
        _progress(f"at {FIXED_RATE}/s: p50 {p50} p95 {p95} p99 {p99} ms")
        messages, added_ms = e2e.streaming()
    tracing_off, tracing_10, tracing_100 = _rest_tasks_per_s_traced(state, agents, hey, counts)
    bare_rps = _bare_fastapi_rps(hey, counts.hey_seconds)
    # No-op Celery tasks on a prefork worker of one process per core (this machine's 2).
    celery_tps = celery_peer.throughput(counts.celery_tasks, processes=os.cpu_count() or 2)
    return [
        # The goals are issue #11's.
        Result(
            "rest_submit_rps",
            round(submit_rps),
            "req/s",
            "higher",
            "bare-fastapi",
            bare_rps,
            goal="ratio >= 0.5",
        ),
        Result(
            "rest_tasks_per_s",
            round(rest_tps, 1),
            "tasks/s",
            "higher",
            "celery",
            round(celery_tps, 1),
            goal="ratio >= 5",
        ),
        Result("rest_task_p50_ms", p50, "ms", "lower"),
        Result("rest_task_p95_ms", p95, "ms", "lower", goal="value <= 20"),
        Result("rest_task_p99_ms", p99, "ms", "lower"),
        Result("batch_tasks_per_s", round(batch_tps, 1), "tasks/s", "higher", goal="value >= 5000"),
        Result("worker_cpu_us_per_task", round(worker_us), "us", "lower", goal="value <= 200"),
        Result("gateway_cpu_us_per_request", round(gateway_us), "us", "lower"),
        Result("orchestrator_cpu_us_per_task", round(orch_us), "us", "lower"),
        Result("messages_per_1000_tokens", messages, "messages", "lower", goal="value <= 50"),
        Result("coalescing_added_latency_p99_ms", added_ms, "ms", "lower", goal="value <= 50"),
        # Issue #14's goal.
        Result(
            "tracing_overhead_pct",
            _overhead_pct(tracing_off, tracing_10),
            "%",
            "lower",
            goal="value <= 10",
        ),
        Result(
            "tracing_overhead_pct_at_100", _overhead_pct(tracing_off, tracing_100), "%", "lower"
        ),
    ]


def _stack_config(state: Path, agents: Path, env: dict[str, str] | None = None) -> StackConfig:
    """Orchestrator, two workers (cache and metrics off) and the gateway; `env` on every one."""
    extra = env or {}
    worker = {
        "TASKLOOM_CONCURRENCY": str(WORKER_CONCURRENCY),
        "TASKLOOM_SIM_LATENCY_MS": "0",
        "TASKLOOM_SIM_TOKENS_PER_SECOND": "0",
        "TASKLOOM_CACHE_ADDR": "",  # the LLM cache off
        "TASKLOOM_METRICS_ADDR": "",
        "TASKLOOM_LOG_LEVEL": "warning",
        "TASKLOOM_AGENTS_DIR": str(agents),
        **extra,
    }
    return StackConfig(
        bin_dir=ROOT / "bin",
        state_dir=Path(tempfile.mkdtemp(prefix="stack-", dir=state)),
        ports=Ports.random(),
        workers=2,
        ready_timeout=180.0,  # a loaded machine starts Python workers slowly
        only=("orchestrator", "worker-1", "worker-2", "gateway"),
        env_overrides={
            **dict.fromkeys(("worker-1", "worker-2"), worker),
            "orchestrator": {"TASKLOOM_LOG_LEVEL": "warn", **extra},
            "gateway": {"TASKLOOM_LOG_LEVEL": "warning", **extra},
        },
    )


def _rest_tasks_per_s_traced(
    state: Path, agents: Path, hey: str, counts: Counts
) -> tuple[float, float, float]:
    """`rest_tasks_per_s` with tracing off, on at a 10 % sampler and on at 100 %, each on a
    fresh stack, one after the other; the spans go to a receiver that discards them."""
    figures = []
    with OtlpReceiver(discard=True) as receiver:
        for ratio in (None, "0.1", "1.0"):
            env = (
                {}
                if ratio is None
                else {
                    "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                    "OTEL_TRACES_SAMPLER_ARG": ratio,
                }
            )
            cfg = _stack_config(state, agents, env)
            with (
                Stack(cfg) as stack,
                grpc.insecure_channel(f"127.0.0.1:{cfg.ports.orchestrator_grpc}") as channel,
            ):
                path = _Path(stack, orchestrator_pb2_grpc.OrchestratorServiceStub(channel), counts)
                figures.append(path.hey_run(hey)[2])
            _progress(
                f"tracing {'off' if ratio is None else f'at {ratio}'}: rest tasks "
                f"{figures[-1]:.0f}/s ({receiver.received} spans received so far)"
            )
    off, at_10, at_100 = figures
    return off, at_10, at_100


def _overhead_pct(off: float, on: float) -> float:
    """How much lower `on` is than `off`, in percent (negative: higher, within the noise)."""
    return round((off - on) / off * 100, 1)


class _Path:
    """The running stack and the measurements made on it, in order."""

    def __init__(
        self, stack: Stack, stub: orchestrator_pb2_grpc.OrchestratorServiceStub, counts: Counts
    ):
        self.stack = stack
        self.counts = counts
        self.stub = stub
        self.gateway = stack.service("gateway").base_url
        self.metrics_url = stack.service("orchestrator").base_url + "/metrics"
        self.unique = 0

    def _input(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        self.unique += 1
        return {"prompt": f"bench question {self.unique}", **(extra or {})}

    def _cpu(self, *names: str) -> float:
        return sum(_cpu_seconds(self.stack.service(n).process) for n in names)

    def _metric(self, name: str) -> float:
        """The sum of a counter's series on the orchestrator's /metrics."""
        with urllib.request.urlopen(self.metrics_url, timeout=10) as resp:
            text = resp.read().decode()
        pattern = re.compile(rf"^taskloom_orchestrator_{name}(?:{{[^}}]*}})? (\S+)$", re.M)
        return sum(float(v) for v in pattern.findall(text))

    def _wait_finished(self, total: float) -> float:
        """Waits until the orchestrator has finished `total` tasks since start; when."""
        deadline = time.monotonic() + WAIT_S
        while self._metric("tasks_finished_total") < total:
            if time.monotonic() > deadline:
                raise RuntimeError(f"fewer than {total:g} tasks finished in {WAIT_S:g}s")
            time.sleep(0.05)
        return time.monotonic()

    def batch_run(self) -> tuple[float, float, float]:
        workers, orch = ("worker-1", "worker-2"), ("orchestrator",)
        finished = self._metric("tasks_finished_total")
        cpu_w, cpu_o = self._cpu(*workers), self._cpu(*orch)
        ids: list[str] = []
        for _ in range(self.counts.batches):
            specs = [
                common_pb2.TaskSpec(agent="assistant", input=_value(self._input()))
                for _ in range(BATCH)
            ]
            resp = self.stub.SubmitTasks(orchestrator_pb2.SubmitTasksRequest(tasks=specs))
            ids += [t.id for t in resp.tasks]
        self._wait_finished(finished + len(ids))
        cpu_w, cpu_o = self._cpu(*workers) - cpu_w, self._cpu(*orch) - cpu_o
        tasks = [self.stub.GetTask(orchestrator_pb2.GetTaskRequest(id=i)).task for i in ids]
        failed = sum(t.status != common_pb2.TASK_STATUS_SUCCEEDED for t in tasks)
        if failed:
            raise RuntimeError(f"{failed} of the batch run's tasks did not succeed")
        first = min(t.created_at.ToNanoseconds() for t in tasks)
        last = max(t.finished_at.ToNanoseconds() for t in tasks)
        n = len(tasks)
        return n / ((last - first) / 1e9), cpu_w / n * 1e6, cpu_o / n * 1e6

    def hey_run(self, hey: str) -> tuple[float, float, float]:
        finished = self._metric("tasks_finished_total")
        body = orjson.dumps({"agent": "assistant", "input": self._input()}).decode()
        cpu = self._cpu("gateway")
        start = time.monotonic()
        accepted, seconds = _hey(hey, f"{self.gateway}/v1/tasks", body, self.counts.hey_seconds)
        cpu = self._cpu("gateway") - cpu
        done = self._wait_finished(finished + accepted)
        return accepted / seconds, cpu / accepted * 1e6, accepted / (done - start)

    async def fixed_rate_latencies(self) -> tuple[float, float, float]:
        """POST → `done` event at FIXED_RATE tasks/s: p50, p95, p99 in ms."""
        # A fresh connection per request, as from many clients; it also avoids reusing a
        # connection the server is closing at its keep-alive timeout.
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=self.gateway, timeout=60, limits=limits) as http:

            async def one(start_at: float) -> float:
                await asyncio.sleep(max(0.0, start_at - time.monotonic()))
                sent = time.monotonic()
                resp = await http.post("/v1/tasks", json={"agent": "assistant", "input": body})
                resp.raise_for_status()
                async with http.stream("GET", f"/v1/tasks/{resp.json()['id']}/events") as ev:
                    async for line in ev.aiter_lines():
                        if line == "event: done":
                            return (time.monotonic() - sent) * 1000
                raise RuntimeError("the event stream ended without done")

            t0 = time.monotonic() + 0.5
            count = FIXED_RATE * self.counts.fixed_seconds
            runs = []
            for i in range(count):
                body = self._input()
                runs.append(asyncio.create_task(one(t0 + i / FIXED_RATE)))
            samples = sorted(await asyncio.gather(*runs))
        return _q(samples, 0.5), _q(samples, 0.95), _q(samples, 0.99)

    def streaming(self) -> tuple[float, float]:
        """Messages for one coalesced 1,000-token answer at 1,000 tokens/s, and the p99 of
        the last text chunk's arrival, coalesced less uncoalesced (ms)."""
        messages, _ = self.stream_once(None)  # the worker's default coalescing
        coalesced = sorted(self.stream_once(None)[1] for _ in range(self.counts.stream_runs))
        plain = sorted(
            self.stream_once({"buffer_size": 0})[1] for _ in range(self.counts.stream_runs)
        )
        return messages, round(max(0.0, _q(coalesced, 0.99) - _q(plain, 0.99)), 2)

    def stream_once(self, stream: dict[str, Any] | None) -> tuple[float, float]:
        """One 1,000-token answer at 1,000 tokens/s with the stream options (None: the
        worker's defaults): worker messages the orchestrator received meanwhile, and ms
        from submit to the last text chunk at a gRPC watcher."""
        # The simulated provider prefixes its marker, one token more.
        answer = " ".join(f"w{i}" for i in range(ANSWER_TOKENS - 1))
        simulate = {"latency_ms": 0, "tokens_per_second": 1000, "script": [{"text": answer}]}
        extra: dict[str, Any] = {"simulate": simulate}
        if stream is not None:
            extra["stream"] = stream
        spec = common_pb2.TaskSpec(agent="streamer", input=_value(self._input(extra)))
        before = self._metric("worker_messages_total")
        sent = time.monotonic()
        task = self.stub.SubmitTask(orchestrator_pb2.SubmitTaskRequest(task=spec)).task
        last, text, done = sent, "", None
        for resp in self.stub.WatchTask(orchestrator_pb2.WatchTaskRequest(id=task.id)):
            ev = resp.event
            if ev.type == orchestrator_pb2.TASK_EVENT_TYPE_CHUNK and ev.chunk_kind in (
                common_pb2.CHUNK_KIND_UNSPECIFIED,
                common_pb2.CHUNK_KIND_TEXT,
            ):
                last, text = time.monotonic(), text + ev.chunk
            if ev.type == orchestrator_pb2.TASK_EVENT_TYPE_DONE:
                done = ev.task
                break
        if done is None or done.usage.completion_tokens != ANSWER_TOKENS:
            raise RuntimeError(f"the streamed task did not answer {ANSWER_TOKENS} tokens")
        if text != done.result.struct_value.fields["text"].string_value:
            raise RuntimeError("the watched text differs from the task's answer")
        # The task's result and credit are counted once its done event is out.
        time.sleep(0.2)
        return self._metric("worker_messages_total") - before, (last - sent) * 1000


def _progress(line: str) -> None:
    print(f"e2e: {line}", file=sys.stderr, flush=True)


def _hey(hey: str, url: str, body: str, seconds: int) -> tuple[int, float]:
    """202s and seconds of a `hey` run at HEY_CLIENTS clients for `seconds`."""
    argv = [hey, "-z", f"{seconds}s", "-c", str(HEY_CLIENTS), "-m", "POST"]
    argv += ["-T", "application/json", "-d", body, url]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    total = re.search(r"Total:\s+([\d.]+) secs", out)
    accepted = re.search(r"\[202\]\s+(\d+) responses", out)
    if total is None or accepted is None:
        raise RuntimeError(f"hey saw no 202s:\n{out[-2000:]}")
    return int(accepted.group(1)), float(total.group(1))


def _bare_fastapi_rps(hey: str, seconds: int) -> float:
    """The peer: bench/peers/bare_fastapi.py under the gateway's uvicorn settings."""
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "bare_fastapi:app", "--port", str(port)]
    argv += ["--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level"]
    argv += ["warning"]
    server = subprocess.Popen(argv, cwd=ROOT / "bench" / "peers")
    try:
        _wait_http(f"http://127.0.0.1:{port}/docs")
        accepted, seconds = _hey(hey, f"http://127.0.0.1:{port}/v1/tasks", '{"agent":"a"}', seconds)
        return round(accepted / seconds)
    finally:
        server.terminate()
        server.wait(timeout=15)


def _wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _cpu_seconds(process: Any) -> float:
    """User and system CPU time of a running process, from /proc."""
    fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _value(obj: Any) -> Any:
    from google.protobuf import json_format, struct_pb2

    return json_format.ParseDict(obj, struct_pb2.Value())


def _q(ordered: list[float], q: float) -> float:
    return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 2)
