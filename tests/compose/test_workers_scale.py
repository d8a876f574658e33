"""`docker-compose up --scale worker=3`: three worker containers share the tasks."""

from __future__ import annotations

from collections import Counter

import httpx

from .compose_stack import ComposeStack, submit_tasks, wait_finished

WORKERS = 3
TASKS = 30


def test_three_worker_containers_share_the_tasks(compose: ComposeStack) -> None:
    compose.run("up", "-d", "--no-recreate", "--scale", f"worker={WORKERS}")
    # Healthy means registered with the orchestrator (the worker's /readyz).
    containers = compose.wait_healthy("worker", WORKERS)
    gateway = compose.url("gateway", 8000)
    with httpx.Client(base_url=gateway, timeout=30) as client:
        task_ids = submit_tasks(client, TASKS, "spread")
        tasks = wait_finished(client, task_ids, timeout=180)

    assert [t["status"] for t in tasks] == ["succeeded"] * TASKS, tasks
    per_worker = Counter(t["worker_id"] for t in tasks)
    print(f"\ncompose-test: {TASKS} tasks over {WORKERS} workers: {dict(per_worker)}")
    # A worker's id is <hostname>-<pid>, and a container's hostname is its short id.
    hosts = {worker_id.rsplit("-", 1)[0] for worker_id in per_worker}
    assert hosts == {container[:12] for container in containers}, (per_worker, containers)
