"""A synchronous Python client of Taskloom's REST gateway.

    with TaskloomClient("http://127.0.0.1:8000", api_key="...") as tl:
        task = tl.submit_task("echo", {"q": "hello"})
        done = tl.wait_task(task["id"])

Every failure the gateway reports raises `TaskloomError` carrying its problem+json body.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled", "timed_out"})


class TaskloomError(Exception):
    """A request failed; `problem` is the gateway's RFC 9457 body."""

    def __init__(self, status: int | None, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        self.reason: str = problem.get("reason", "")
        self.detail: str = problem.get("detail", "")
        super().__init__(f"{status} {self.reason}: {self.detail}" if status else self.detail)


@dataclass(frozen=True)
class Event:
    """One event of a task's stream: `status`, `chunk`, `done` or `error`."""

    event: str
    data: Any


def _raise_for_problem(resp: httpx.Response) -> None:
    if resp.is_success:
        return
    try:
        problem = resp.json()
    except ValueError:
        problem = None
    if not isinstance(problem, dict):
        problem = {"status": resp.status_code, "title": resp.reason_phrase, "detail": resp.text}
    raise TaskloomError(resp.status_code, problem)


def _parse_sse(lines: Iterator[str]) -> Iterator[Event]:
    """Server-Sent Events (WHATWG event-stream format) from a stream of lines."""
    name, data = "message", list[str]()
    for line in lines:
        if not line:
            if data:
                yield Event(name, orjson.loads("\n".join(data)))
            name, data = "message", []
            continue
        if line.startswith(":"):
            continue  # comment, e.g. a keep-alive ping
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)


class TaskloomClient:
    """Submit, read, cancel and stream Taskloom tasks over the REST gateway."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(
            base_url=base_url, headers=headers, timeout=timeout, transport=transport
        )

    def __enter__(self) -> TaskloomClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            resp = self._http.request(method, path, **kwargs)
        except httpx.TransportError as err:
            raise TaskloomError(
                None,
                {"reason": "UNREACHABLE", "detail": f"Cannot reach {self._http.base_url}: {err}"},
            ) from err
        _raise_for_problem(resp)
        return resp

    def submit_task(
        self,
        agent: str,
        input: Any = None,
        *,
        priority: int | None = None,
        labels: dict[str, str] | None = None,
        timeout_seconds: float | None = None,
        max_attempts: int | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Queue a task; returns its state (the existing task when the key was seen before)."""
        body: dict[str, Any] = {"agent": agent, "input": input}
        optional = {
            "priority": priority,
            "labels": labels,
            "timeout_seconds": timeout_seconds,
            "max_attempts": max_attempts,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._request("POST", "/v1/tasks", json=body, headers=headers).json()  # type: ignore[no-any-return]

    def get_task(self, task_id: str) -> dict[str, Any]:
        return self._request("GET", f"/v1/tasks/{task_id}").json()  # type: ignore[no-any-return]

    def list_tasks(
        self,
        *,
        status: str | None = None,
        agent: str | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
    ) -> dict[str, Any]:
        """One page: `{"tasks": [...], "next_page_token": str | None}`."""
        params = {
            "status": status,
            "agent": agent,
            "page_size": page_size,
            "page_token": page_token,
        }
        params = {k: v for k, v in params.items() if v is not None}
        return self._request("GET", "/v1/tasks", params=params).json()  # type: ignore[no-any-return]

    def cancel_task(self, task_id: str, reason: str = "") -> dict[str, Any]:
        return self._request("POST", f"/v1/tasks/{task_id}/cancel", json={"reason": reason}).json()  # type: ignore[no-any-return]

    def list_agents(self) -> list[dict[str, Any]]:
        return self._request("GET", "/v1/agents").json()["agents"]  # type: ignore[no-any-return]

    def stream_events(self, task_id: str) -> Iterator[Event]:
        """The task's events as they happen, ending after `done`; `error` raises TaskloomError."""
        try:
            with self._http.stream(
                "GET", f"/v1/tasks/{task_id}/events", timeout=httpx.Timeout(None, connect=10)
            ) as resp:
                if not resp.is_success:
                    resp.read()
                    _raise_for_problem(resp)
                for event in _parse_sse(resp.iter_lines()):
                    if event.event == "error":
                        raise TaskloomError(event.data.get("status"), event.data)
                    yield event
                    if event.event == "done":
                        return
        except httpx.TransportError as err:
            raise TaskloomError(
                None, {"reason": "UNREACHABLE", "detail": f"The event stream broke: {err}"}
            ) from err

    def wait_task(
        self, task_id: str, *, timeout: float | None = None, poll_interval: float = 0.5
    ) -> dict[str, Any]:
        """Block until the task has finished and return its final state.

        Without a timeout this follows the event stream; with one it polls, so that the
        wait ends on time even while no event arrives.
        """
        if timeout is None:
            for event in self.stream_events(task_id):
                if event.event == "done":
                    return event.data  # type: ignore[no-any-return]
        deadline = time.monotonic() + (timeout if timeout is not None else float("inf"))
        while True:
            task = self.get_task(task_id)
            if task["status"] in TERMINAL_STATUSES:
                return task
            if time.monotonic() >= deadline:
                raise TimeoutError(f"task {task_id} is still {task['status']} after {timeout} s")
            time.sleep(min(poll_interval, max(0.0, deadline - time.monotonic())))
