"""Scenario `gateway`: what one gateway process carries (issue #12's goals).

- `batch_submit_tasks_per_s`: no-op tasks accepted (202) per second through `POST
  /v1/tasks:batch`, batches of 1,000 from 4 concurrent clients (httpx, one thread each,
  bodies serialised before the clock starts). Beside it, the same batches sent straight
  to the orchestrator's `SubmitTasks` over gRPC from 4 threads: what the gateway's REST
  layer costs on top of the core it fronts (the issue names no outside peer).
- `sse_streams_held`: SSE watchers (`GET /v1/tasks/{id}/events`) one gateway holds at
  once, each on a running task of the simulated assistant paced at one token a second
  (so about one `chunk` event a second per stream), counted as the streams still open
  and receiving during the last seconds of the hold.
- `sse_event_delay_p99_ms` (and p50): from the orchestrator's timestamp of a chunk (its
  `TaskEvent.time`, read back over gRPC WatchTask) to the SSE client's receipt, live
  chunks only (those stamped after the stream opened).
- `gateway_rss_mb`: the gateway process's largest RSS during the hold.

Quick: 2 batches per client and 200 streams held 10 s; full: 10 batches per client and
5,000 streams held 30 s (the goal's load), on as many workers as the proto's limit on a
worker's concurrency needs (two for 5,000).
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from typing import Any

import httpx
import orjson
import progress
import stack
from run import Result

from taskloom.sdk.proto_limits import int_range
from taskloom.v1 import common_pb2, orchestrator_pb2, worker_hub_pb2

CLIENTS = 4
BATCH = 1_000
BATCHES_PER_CLIENT = {True: 2, False: 10}
STREAMS = {True: 200, False: 5_000}
HOLD_S = {True: 10.0, False: 30.0}
# A stream is held if it received a chunk in the hold's last LIVE_S seconds.
LIVE_S = 3.0
# The paced tasks go in batches this small: their long prompts stay under the body limit.
PACED_BATCH = 100
# Tasks whose chunk times are read back over gRPC for the delay.
DELAY_SAMPLE = 100
# One token a second, and a prompt long enough that the echoed answer outlasts the hold.
PACED_INPUT = {
    "prompt": " ".join(["streaming"] * 200),
    "simulate": {"latency_ms": 0, "tokens_per_second": 1},
}


def run(quick: bool = False) -> list[Result]:
    streams = STREAMS[quick]
    # One task per stream: enough workers, each at most the concurrency the proto allows.
    _, per_worker = int_range(worker_hub_pb2.Register, "concurrency")
    workers = -(-(streams + 10) // per_worker)
    concurrency = -(-(streams + 10) // workers)
    with (
        progress.phases("gateway", 3) as phase,
        stack.running(workers=workers, worker_env={"TASKLOOM_CONCURRENCY": str(concurrency)}) as s,
    ):
        batches = BATCHES_PER_CLIENT[quick]
        phase("REST batch submit")
        rest_rate = _rest_batches(s.gateway_url, batches)
        phase("gRPC SubmitTasks (no gateway)")
        grpc_rate = _grpc_batches(s, batches)
        total = 2 * CLIENTS * batches * BATCH
        stack.await_metric(
            s,
            "taskloom_orchestrator_tasks_finished_total",
            total,
            "no-op tasks finished",
            600,
            agent=stack.NOOP_AGENT,
        )
        phase(f"{streams} SSE streams")
        held, delays, rss = asyncio.run(_hold_streams(s, streams, HOLD_S[quick]))

    return [
        Result(
            "batch_submit_tasks_per_s",
            round(rest_rate),
            "tasks/s",
            "higher",
            "orchestrator SubmitTasks over gRPC (no gateway)",
            round(grpc_rate),
            "value >= 20000",
        ),
        Result("sse_streams_held", held, "streams", "higher", goal=f"value >= {streams}"),
        Result("sse_event_delay_p99_ms", _pct(delays, 0.99), "ms", "lower", goal="value <= 50"),
        Result("sse_event_delay_p50_ms", _pct(delays, 0.50), "ms", "lower"),
        Result("gateway_rss_mb", round(rss, 1), "MB", "lower"),
    ]


def _pct(values: list[float], q: float) -> float:
    if not values:
        raise RuntimeError("no live chunk was timed: the SSE streams received nothing")
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def _concurrently(send_batches: Any, batches: int) -> float:
    """Tasks per second of CLIENTS threads, each running send_batches(batches)."""
    threads = [threading.Thread(target=send_batches, args=(batches,)) for _ in range(CLIENTS)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return CLIENTS * batches * BATCH / (time.perf_counter() - start)


def _rest_batches(gateway_url: str, batches: int) -> float:
    body = orjson.dumps({"tasks": [{"agent": stack.NOOP_AGENT, "input": "go"}] * BATCH})
    headers = {"Content-Type": "application/json"}
    failures: list[str] = []

    def send(n: int) -> None:
        with httpx.Client(base_url=gateway_url, timeout=120) as client:
            for _ in range(n):
                reply = client.post("/v1/tasks:batch", content=body, headers=headers)
                if reply.status_code != 202:
                    failures.append(f"{reply.status_code} {reply.text[:200]}")

    rate = _concurrently(send, batches)
    if failures:
        raise RuntimeError(f"batch submit failed: {failures[0]}")
    return rate


def _grpc_batches(s: stack.Stack, batches: int) -> float:
    spec = common_pb2.TaskSpec(agent=stack.NOOP_AGENT)
    spec.input.string_value = "go"
    request = orchestrator_pb2.SubmitTasksRequest(tasks=[spec] * BATCH)
    with stack.orchestrator(s) as orch:

        def send(n: int) -> None:
            for _ in range(n):
                orch.SubmitTasks(request, timeout=120)

        return _concurrently(send, batches)


async def _hold_streams(s: stack.Stack, n: int, hold_s: float) -> tuple[int, list[float], float]:
    """(streams held, delays in ms, the gateway's peak RSS in MB)."""
    received: dict[tuple[str, int], float] = {}  # (task, seq) -> wall-clock receipt
    opened: dict[str, float] = {}
    last_chunk: dict[str, float] = {}
    limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=n + 10)
    async with httpx.AsyncClient(base_url=s.gateway_url, timeout=None, limits=limits) as client:
        ids: list[str] = []
        for offset in range(0, n, PACED_BATCH):
            items = [{"agent": "assistant", "input": PACED_INPUT}] * min(PACED_BATCH, n - offset)
            reply = await client.post("/v1/tasks:batch", json={"tasks": items})
            reply.raise_for_status()
            ids += [task["id"] for task in reply.json()["tasks"]]

        async def watch(task_id: str) -> None:
            async with client.stream("GET", f"/v1/tasks/{task_id}/events") as response:
                opened[task_id] = time.time()
                name = ""
                async for line in response.aiter_lines():
                    if line.startswith("event:"):
                        name = line.removeprefix("event:").strip()
                    elif line.startswith("data:") and name == "chunk":
                        now = time.time()
                        seq = orjson.loads(line.removeprefix("data:"))["seq"]
                        received[(task_id, seq)] = now
                        last_chunk[task_id] = now

        watchers = [asyncio.create_task(watch(task_id)) for task_id in ids]
        gateway_pid = s.service("gateway").process.pid  # type: ignore[union-attr]
        peak_rss = 0.0
        end = time.time() + hold_s
        while time.time() < end:
            peak_rss = max(peak_rss, stack.rss_mb(gateway_pid))
            await asyncio.sleep(0.5)
        held = sum(
            1
            for task_id, watcher in zip(ids, watchers, strict=True)
            if not watcher.done() and last_chunk.get(task_id, 0.0) >= end - LIVE_S
        )
        for watcher in watchers:
            watcher.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
    delays = await asyncio.to_thread(_delays_ms, s, ids[:DELAY_SAMPLE], received, opened)
    return held, delays, peak_rss


def _delays_ms(
    s: stack.Stack,
    ids: list[str],
    received: dict[tuple[str, int], float],
    opened: dict[str, float],
) -> list[float]:
    """Receipt minus the orchestrator's chunk time, for the sampled tasks' live chunks."""
    delays: list[float] = []
    with stack.orchestrator(s) as orch:
        for task_id in ids:
            seqs = [seq for (tid, seq) in received if tid == task_id]
            if not seqs or task_id not in opened:
                continue
            last = max(seqs)
            watch = orch.WatchTask(orchestrator_pb2.WatchTaskRequest(id=task_id), timeout=60)
            for reply in watch:
                event = reply.event
                if event.type != orchestrator_pb2.TASK_EVENT_TYPE_CHUNK:
                    continue
                stamped = event.time.seconds + event.time.nanos / 1e9
                got = received.get((task_id, event.chunk_seq))
                if got is not None and stamped >= opened[task_id]:
                    delays.append((got - stamped) * 1000)
                if event.chunk_seq >= last:
                    watch.cancel()
                    break
    if delays:
        print(
            f"  sse delay: {len(delays)} live chunks timed, mean {statistics.mean(delays):.1f} ms"
        )
    return delays
