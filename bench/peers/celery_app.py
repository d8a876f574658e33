"""Celery side of the `celery+redis` peer: a no-op task and the client that times it.

Run by bench/peers/celery_peer.py with the bench virtualenv's python (Celery is not a
project dependency): `celery -A celery_app worker` serves `noop`, and
`python celery_app.py TASKS` submits TASKS of them and prints tasks/s as JSON.
The broker and result backend are the Redis at $BENCH_REDIS_URL.
"""

from __future__ import annotations

import json
import os
import sys
import time

from celery import Celery
from celery.result import ResultSet

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
app = Celery("bench_peer", broker=REDIS_URL, backend=REDIS_URL)
app.conf.update(
    worker_hijack_root_logger=False, result_expires=600, broker_connection_retry_on_startup=True
)


@app.task(name="bench.noop")
def noop() -> None:
    """Does nothing: the run measures the queue, not the work."""


def main(tasks: int) -> int:
    # One task through first: the worker is up and connected once it returns.
    noop.delay().get(timeout=60)
    start = time.perf_counter()
    results = ResultSet([noop.delay() for _ in range(tasks)])
    submitted = time.perf_counter()
    results.get(timeout=600)
    done = time.perf_counter()
    print(
        json.dumps(
            {
                "tasks": tasks,
                "tasks_per_second": tasks / (done - start),
                "submit_per_second": tasks / (submitted - start),
                "seconds": done - start,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1])))
