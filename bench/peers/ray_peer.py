"""The Ray peer, run with its own environment's python (bench/peers/env.py): local Ray
with the given number of CPUs, TASKS no-op remote functions submitted and awaited;
tasks/s from the first submit to the last result, one JSON line on stdout.

    python ray_peer.py --tasks 20000 --cpus 2
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time

import ray


@ray.remote
def noop() -> None:
    """Does nothing: the run measures the scheduler, not the work."""


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, required=True)
    parser.add_argument("--cpus", type=int, default=2)
    args = parser.parse_args(argv)
    temp = tempfile.mkdtemp(prefix="ray-")  # short: Ray's socket paths must fit 107 bytes
    for attempt in (1, 2):
        try:
            ray.init(
                num_cpus=args.cpus,
                include_dashboard=False,
                logging_level="ERROR",
                log_to_driver=False,
                _temp_dir=temp,
            )
            break
        except Exception as err:  # Ray gives its raylet 30 s; a loaded machine may need a retry
            print(f"ray.init failed (attempt {attempt}): {err}", file=sys.stderr)
            ray.shutdown()
            if attempt == 2:
                raise
    try:
        ray.get([noop.remote() for _ in range(200)])  # workers started and warm
        start = time.perf_counter()
        refs = [noop.remote() for _ in range(args.tasks)]
        submitted = time.perf_counter()
        ray.get(refs)
        done = time.perf_counter()
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
    print(
        json.dumps(
            {
                "tasks": args.tasks,
                "tasks_per_second": args.tasks / (done - start),
                "submit_per_second": args.tasks / (submitted - start),
                "seconds": done - start,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
