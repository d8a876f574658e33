"""Scenario `queue-throughput`: no-op tasks through the queue and completed by Python
workers, beside Ray and Celery (whose workers run Python too). Tasks/s from the first
submit to the last completion.

Taskloom: the whole stack, two Python workers (one per core, their default credits),
the bench's `bench-noop` agent (one simulated token, no cache), tasks submitted over
gRPC in batches of 1,000 (`SubmitTasks`); the last completion is the latest
`finished_at` of the tasks (the orchestrator's clock, on this host). Peers: Ray local
with 2 CPUs (`@ray.remote` no-op functions), and Celery with 2 prefork processes on a
Redis broker and result backend.
"""

from __future__ import annotations

import time

import progress
import stack
from google.protobuf import timestamp_pb2
from peers import celery_peer, env
from peers.process import run_script
from run import Result

from taskloom.v1 import orchestrator_pb2, orchestrator_pb2_grpc

Orchestrator = orchestrator_pb2_grpc.OrchestratorServiceStub

TASKS = {True: 5_000, False: 20_000}
WORKERS = 2
AGENT = stack.NOOP_AGENT
WARMUP = 500


def run(quick: bool = False) -> list[Result]:
    tasks = TASKS[quick]
    with progress.phases("queue-throughput", 3) as phase:
        phase("Ray, 2 CPUs")
        ray = run_script(env.python("ray"), "ray_peer.py", "--tasks", str(tasks), "--cpus", "2")
        phase("Celery, 2 processes")
        celery = celery_peer.throughput(tasks, processes=2)
        phase("Taskloom, 2 Python workers")
        with stack.running(workers=WORKERS, worker_env=stack.NO_DELAY) as s:
            ours = _taskloom(s, tasks)
    return [
        Result(
            "tasks_per_s",
            round(ours, 1),
            "tasks/s",
            "higher",
            "ray",
            round(ray["tasks_per_second"], 1),
            "ratio >= 3",
        ),
        Result(
            "tasks_per_s_vs_celery",
            round(ours, 1),
            "tasks/s",
            "higher",
            "celery+redis",
            round(celery, 1),
            "ratio >= 10",
        ),
    ]


def _taskloom(s: stack.Stack, tasks: int) -> float:
    with stack.orchestrator(s) as orch:
        stack.submit_noop(orch, WARMUP)
        _await_finished(s, WARMUP)
        start = time.time()
        stack.submit_noop(orch, tasks)
        _await_finished(s, WARMUP + tasks)
        end = _last_finished(orch, after=start)
    return tasks / (end - start)


def _await_finished(s: stack.Stack, total: int, timeout: float = 600) -> None:
    """Waits until the orchestrator counts total finished tasks of the agent."""
    finished = "taskloom_orchestrator_tasks_finished_total"
    stack.await_metric(s, finished, total, "tasks finished", timeout, agent=AGENT)
    if failed := stack.orchestrator_metric(s, finished, agent=AGENT, status="failed"):
        raise RuntimeError(f"{failed:.0f} no-op tasks failed")


def _last_finished(orch: Orchestrator, after: float) -> float:
    """The latest finished_at of the agent's tasks created after `after` (epoch s)."""
    latest, token = 0.0, ""
    while True:
        request = orchestrator_pb2.ListTasksRequest(agent=AGENT, page_size=1000, page_token=token)
        page = orch.ListTasks(request, timeout=60)
        for t in page.tasks:
            if _epoch(t.created_at) >= after:
                latest = max(latest, _epoch(t.finished_at))
        token = page.next_page_token
        if not token:
            return latest


def _epoch(ts: timestamp_pb2.Timestamp) -> float:
    return ts.seconds + ts.nanos / 1e9
