"""Celery side of the `celery+redis` peer, run with the celery peer environment's python
(bench/peers/env.py; Celery is not a project dependency). The broker and the result
backend are the Redis at $BENCH_REDIS_URL.

    celery -A celery_app worker ...                   serves the tasks below
    python celery_app.py throughput TASKS             TASKS no-op tasks: tasks/s
    python celery_app.py chains C N STEP_MS           N chains of 3 STEP_MS steps, C at a
                                                      time: time above the 3-step floor
Each client prints one JSON line.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from celery import Celery, chain
from celery.result import ResultSet

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
app = Celery("bench_peer", broker=REDIS_URL, backend=REDIS_URL)
app.conf.update(
    worker_hijack_root_logger=False, result_expires=600, broker_connection_retry_on_startup=True
)


@app.task(name="bench.noop")
def noop() -> None:
    """Does nothing: the run measures the queue, not the work."""


@app.task(name="bench.step")
def step(_previous: object, ms: float) -> None:
    """A simulated LLM call: waits ms milliseconds."""
    time.sleep(ms / 1000)


def throughput(tasks: int) -> dict[str, Any]:
    noop.delay().get(timeout=60)  # the worker is up and connected once it returns
    start = time.perf_counter()
    results = ResultSet([noop.delay() for _ in range(tasks)])
    submitted = time.perf_counter()
    results.get(timeout=600)
    done = time.perf_counter()
    return {
        "tasks": tasks,
        "tasks_per_second": tasks / (done - start),
        "submit_per_second": tasks / (submitted - start),
        "seconds": done - start,
    }


def chains(concurrency: int, workflows: int, step_ms: float) -> dict[str, Any]:
    floor = 3 * step_ms

    def one(_: int) -> float:
        start = time.perf_counter()
        flow = chain(step.s(None, step_ms), step.s(step_ms), step.s(step_ms))
        flow.apply_async().get(timeout=120)
        return (time.perf_counter() - start) * 1000 - floor

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(min(concurrency, 10))))  # warm up
        over = sorted(pool.map(one, range(workflows)))
    return {
        "p50_ms": round(statistics.median(over), 3),
        "p99_ms": round(over[min(len(over) - 1, int(0.99 * len(over)))], 3),
        "count": len(over),
    }


def main(argv: list[str]) -> int:
    if argv[0] == "throughput":
        out = throughput(int(argv[1]))
    elif argv[0] == "chains":
        out = chains(int(argv[1]), int(argv[2]), float(argv[3]))
    else:
        raise SystemExit(f"unknown command {argv[0]!r}")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
