"""`taskloom loadtest`: submit many tasks at a set concurrency through the async client,
follow each to its end, and sum up throughput and submit-to-done latency. A quick check of a
running stack from a laptop; `make bench` holds the measured scenarios."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import anyio

from taskloom.sdk.async_client import AsyncTaskloomClient
from taskloom.sdk.errors import TaskloomError


@dataclass(frozen=True)
class LoadReport:
    tasks: int
    concurrency: int
    succeeded: int
    failed: int
    errors: int  # calls the gateway refused or could not answer
    seconds: float
    tasks_per_second: float
    latency_p50_ms: float
    latency_p95_ms: float
    latency_p99_ms: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(sorted_values: list[float], q: float) -> float:
    """The nearest-rank percentile of already sorted values (0 when there are none)."""
    if not sorted_values:
        return 0.0
    rank = max(1, round(q / 100 * len(sorted_values) + 0.5 - 1e-9))
    return sorted_values[min(rank, len(sorted_values)) - 1]


async def run_load(
    client: AsyncTaskloomClient, agent: str, task_input: Any, tasks: int, concurrency: int
) -> LoadReport:
    latencies: list[float] = []
    outcomes = {"succeeded": 0, "failed": 0, "errors": 0}
    limiter = anyio.Semaphore(concurrency)

    async def one() -> None:
        async with limiter:
            began = time.perf_counter()
            try:
                task = await client.submit_task(agent, task_input)
                done = await client.wait_task(task.id)
            except TaskloomError:
                outcomes["errors"] += 1
                return
            latencies.append((time.perf_counter() - began) * 1000)
            outcomes["succeeded" if done.status == "succeeded" else "failed"] += 1

    began = time.perf_counter()
    async with anyio.create_task_group() as group:
        for _ in range(tasks):
            group.start_soon(one)
    seconds = time.perf_counter() - began
    latencies.sort()
    return LoadReport(
        tasks=tasks,
        concurrency=concurrency,
        seconds=round(seconds, 3),
        tasks_per_second=round(tasks / seconds, 2) if seconds > 0 else 0.0,
        latency_p50_ms=round(percentile(latencies, 50), 1),
        latency_p95_ms=round(percentile(latencies, 95), 1),
        latency_p99_ms=round(percentile(latencies, 99), 1),
        **outcomes,
    )
