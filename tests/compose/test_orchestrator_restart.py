"""Restarting the orchestrator container in the middle of a run loses no accepted task."""

from __future__ import annotations

from collections import Counter

import httpx

from .compose_stack import (
    TERMINAL,
    ComposeStack,
    listed_task_ids,
    statuses,
    submit_tasks,
    wait_finished,
)

TASKS = 60


def test_orchestrator_restart_mid_run_loses_no_task(compose: ComposeStack) -> None:
    gateway = compose.url("gateway", 8000)
    with httpx.Client(base_url=gateway, timeout=30) as client:
        task_ids = submit_tasks(client, TASKS, "restart")
        before = Counter(statuses(client, task_ids).values())
        compose.run("restart", "orchestrator")
        tasks = wait_finished(client, task_ids, timeout=300)
        listed = Counter(listed_task_ids(client))

    unfinished = sum(n for status, n in before.items() if status not in TERMINAL)
    attempts = Counter(t["attempts"] for t in tasks)
    print(
        f"\ncompose-test: orchestrator restarted with {dict(before)} of {TASKS} tasks; "
        f"afterwards {dict(Counter(t['status'] for t in tasks))}, attempts {dict(attempts)}"
    )
    # The restart came mid-run: some accepted tasks were not finished yet.
    assert unfinished > 0, before
    assert [t["status"] for t in tasks] == ["succeeded"] * TASKS, tasks
    # Every accepted task is still listed, once.
    assert {task_id: listed[task_id] for task_id in task_ids} == dict.fromkeys(task_ids, 1)
