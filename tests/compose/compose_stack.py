"""The Compose stack that `make compose-test` started, seen from the tests: its containers
through the docker-compose CLI, its tasks through the published gateway."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

TERMINAL = {"succeeded", "failed", "cancelled", "timed_out"}


@dataclass(frozen=True)
class ComposeStack:
    """One Compose project: its name and its files, as `docker-compose -p … -f …` takes them."""

    project: str
    files: tuple[str, ...]

    @classmethod
    def from_env(cls) -> ComposeStack | None:
        project = os.environ.get("TASKLOOM_COMPOSE_PROJECT", "")
        files = os.environ.get("TASKLOOM_COMPOSE_FILES", "")
        if not project or not files:
            return None
        return cls(project, tuple(files.split(os.pathsep)))

    def run(self, *args: str, timeout: float = 300) -> str:
        command = ["docker-compose", "-p", self.project]
        for file in self.files:
            command += ["-f", file]
        done = subprocess.run(
            [*command, *args], capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            raise AssertionError(f"{' '.join(command + list(args))} failed:\n{done.stderr}")
        return done.stdout

    def address(self, service: str, port: int) -> str:
        """host:port where a port of the service's (first) container is published."""
        return self.run("port", service, str(port)).strip()

    def url(self, service: str, port: int) -> str:
        """http://host:port of a published port of the service's (first) container."""
        return "http://" + self.address(service, port)

    def container_ids(self, service: str) -> list[str]:
        return self.run("ps", "-q", service).split()

    def health(self, container_ids: Iterable[str]) -> dict[str, str]:
        """Container id → its health check's status (or its state, without a health check)."""
        ids = list(container_ids)
        if not ids:
            return {}
        inspected = json.loads(
            subprocess.run(
                ["docker", "inspect", *ids], capture_output=True, text=True, check=True
            ).stdout
        )
        return {
            c["Id"]: (c["State"].get("Health") or {}).get("Status", c["State"]["Status"])
            for c in inspected
        }

    def wait_healthy(self, service: str, count: int, timeout: float = 180) -> list[str]:
        """Waits until `count` containers of the service report healthy; returns their ids."""
        deadline = time.monotonic() + timeout
        while True:
            health = self.health(self.container_ids(service))
            if len(health) == count and set(health.values()) == {"healthy"}:
                return sorted(health)
            assert time.monotonic() < deadline, f"{service} never had {count} healthy: {health}"
            time.sleep(1)


def submit_tasks(client: httpx.Client, count: int, prefix: str) -> list[str]:
    """Submits `count` assistant tasks at once (eight at a time); returns their ids."""

    def submit(index: int) -> str:
        response = client.post(
            "/v1/tasks", json={"agent": "assistant", "input": f"{prefix} {index}"}
        )
        assert response.status_code == 202, response.text
        return str(response.json()["id"])

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(submit, range(count)))


def statuses(client: httpx.Client, task_ids: Iterable[str]) -> dict[str, str]:
    """Task id → status, from one read of each task."""
    return {task_id: client.get(f"/v1/tasks/{task_id}").json()["status"] for task_id in task_ids}


def wait_finished(
    client: httpx.Client, task_ids: Iterable[str], timeout: float
) -> list[dict[str, Any]]:
    """Every task once it is finished, in order. Tolerates the gateway answering 503 while the
    orchestrator is away (a restart), since waiting through that is the point."""
    deadline = time.monotonic() + timeout
    finished: list[dict[str, Any]] = []
    for task_id in task_ids:
        while True:
            try:
                response = client.get(f"/v1/tasks/{task_id}")
            except httpx.TransportError:
                response = None
            if response is not None and response.status_code == 200:
                task = response.json()
                if task["status"] in TERMINAL:
                    finished.append(task)
                    break
            elif response is not None:
                assert response.status_code == 503, response.text
            assert time.monotonic() < deadline, f"task {task_id} did not finish"
            time.sleep(0.2)
    return finished


def listed_task_ids(client: httpx.Client) -> list[str]:
    """Every task id the gateway lists, over all pages (duplicates kept, to be counted)."""
    ids: list[str] = []
    token = None
    while True:
        params = {"page_size": 1000, **({"page_token": token} if token else {})}
        page = client.get("/v1/tasks", params=params).json()
        ids += [task["id"] for task in page["tasks"]]
        token = page.get("next_page_token")
        if not token:
            return ids
