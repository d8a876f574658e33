"""The synchronous Python client of Taskloom's REST gateway.

    with TaskloomClient("http://127.0.0.1:8000", api_key="...") as tl:
        task = tl.submit_task("echo", {"q": "hello"})
        done = tl.wait_task(task.id)

Answers are typed (`taskloom.sdk.models`); every failure the gateway reports raises
`TaskloomError` carrying its problem+json body. 429 and 503 answers are retried after
`Retry-After` (`RetryPolicy`); event streams that break resume with `Last-Event-ID`.
`AsyncTaskloomClient` (taskloom.sdk.async_client) offers the same calls with `await`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TypeVar

import httpx

from taskloom.sdk import calls
from taskloom.sdk.calls import Call
from taskloom.sdk.errors import TaskloomError, problem_of
from taskloom.sdk.events import Event, ResumableStream, broken_stream
from taskloom.sdk.models import Agent, Task, TaskPage, TaskRequest, Workflow, WorkflowPage
from taskloom.sdk.retry import RetryPolicy

__all__ = ["Event", "TaskloomClient", "TaskloomError"]

T = TypeVar("T")
# Reading an event stream waits as long as the work takes; connecting does not.
STREAM_TIMEOUT = httpx.Timeout(None, connect=10)


class TaskloomClient:
    """Submit, read, cancel and stream Taskloom tasks and workflows over the REST gateway."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.retry = retry or RetryPolicy()
        self._http = httpx.Client(
            base_url=base_url, headers=headers, timeout=timeout, transport=transport
        )

    def __enter__(self) -> TaskloomClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(self, call: Call[T]) -> T:
        retry = 0
        while True:
            try:
                resp = self._http.request(call.method, call.path, **call.request_args())
            except httpx.TransportError as err:
                raise TaskloomError.unreachable(self._http.base_url, err) from err
            if resp.is_success:
                return call.read(resp)
            retry += 1
            wait = self.retry.wait_before(retry, resp, call.repeatable)
            if wait is None:
                raise problem_of(resp)
            time.sleep(wait)

    # Tasks

    def submit_task(self, agent: str, input: Any = None, **options: Any) -> Task:
        """Queue a task (options: priority, labels, timeout_seconds, max_attempts,
        idempotency_key); the existing task when the idempotency key was seen before."""
        return self._call(calls.submit_task(TaskRequest(agent=agent, input=input, **options)))

    def submit_tasks(self, tasks: Iterable[TaskRequest | Mapping[str, Any]]) -> list[Task]:
        """Queue many tasks, all or none (the gateway's batch limit applies)."""
        return self._call(calls.submit_tasks(TaskRequest.model_validate(t) for t in tasks))

    def get_task(self, task_id: str) -> Task:
        return self._call(calls.get_task(task_id))

    def get_session(self, session_id: str) -> dict[str, Any]:
        """A session's messages, oldest first."""
        return self._call(calls.get_session(session_id))

    def delete_session(self, session_id: str) -> None:
        """Forget a session: its next task starts a new conversation."""
        self._call(calls.delete_session(session_id))

    def list_tasks(
        self,
        *,
        status: str | None = None,
        agent: str | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
    ) -> TaskPage:
        """One page, newest first; pass `next_page_token` back for the next."""
        return self._call(
            calls.list_tasks(status=status, agent=agent, page_size=page_size, page_token=page_token)
        )

    def iter_tasks(self, **filters: Any) -> Iterator[Task]:
        """Every task the filters match, page after page."""
        token = None
        while True:
            page = self.list_tasks(**filters, page_token=token)
            yield from page.tasks
            if not page.next_page_token:
                return
            token = page.next_page_token

    def cancel_task(self, task_id: str, reason: str = "") -> Task:
        return self._call(calls.cancel_task(task_id, reason))

    def stream_events(self, task_id: str, *, last_event_id: str = "") -> Iterator[Event]:
        """The task's events as they happen, ending after `done`; `error` raises
        TaskloomError. A broken connection is reopened with `Last-Event-ID`."""
        return self._stream(f"/v1/tasks/{task_id}/events", ResumableStream(last_event_id))

    def wait_task(
        self, task_id: str, *, timeout: float | None = None, poll_interval: float = 0.5
    ) -> Task:
        """Block until the task has finished and return its final state.

        Without a timeout this follows the event stream; with one it polls, so that the
        wait ends on time even while no event arrives.
        """
        if timeout is None:
            for event in self.stream_events(task_id):
                if event.event == "done":
                    return event.task()
        deadline = time.monotonic() + (timeout if timeout is not None else float("inf"))
        while True:
            task = self.get_task(task_id)
            if task.done:
                return task
            if time.monotonic() >= deadline:
                raise TimeoutError(f"task {task_id} is still {task.status} after {timeout} s")
            time.sleep(min(poll_interval, max(0.0, deadline - time.monotonic())))

    # Agents

    def list_agents(self) -> list[Agent]:
        return self._call(calls.list_agents())

    def get_agent(self, name: str) -> Agent:
        """The agent with its tools and limits."""
        return self._call(calls.get_agent(name))

    # Workflows

    def submit_workflow(
        self, spec: Mapping[str, Any] | str, *, idempotency_key: str | None = None
    ) -> Workflow:
        """Start a workflow from a mapping (JSON) or YAML text."""
        return self._call(calls.submit_workflow(spec, idempotency_key))

    def get_workflow(self, workflow_id: str) -> Workflow:
        return self._call(calls.get_workflow(workflow_id))

    def list_workflows(
        self,
        *,
        status: str | None = None,
        name: str | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
    ) -> WorkflowPage:
        return self._call(
            calls.list_workflows(
                status=status, name=name, page_size=page_size, page_token=page_token
            )
        )

    def cancel_workflow(self, workflow_id: str, reason: str = "") -> Workflow:
        return self._call(calls.cancel_workflow(workflow_id, reason))

    def stream_workflow_events(
        self, workflow_id: str, *, last_event_id: str = ""
    ) -> Iterator[Event]:
        """`status`, `step` and finally `done` events; a broken connection is reopened with
        `Last-Event-ID`, so the step events go on after the last one received."""
        return self._stream(f"/v1/workflows/{workflow_id}/events", ResumableStream(last_event_id))

    def wait_workflow(self, workflow_id: str) -> Workflow:
        for event in self.stream_workflow_events(workflow_id):
            if event.event == "done":
                return event.workflow()
        raise AssertionError("a workflow stream ends with done")  # pragma: no cover

    def _stream(self, path: str, stream: ResumableStream) -> Iterator[Event]:
        broken = 0  # reconnects since the last event
        failure: Exception | None = None
        while True:
            try:
                with self._http.stream(
                    "GET", path, headers=stream.headers(), timeout=STREAM_TIMEOUT
                ) as resp:
                    if not resp.is_success:
                        resp.read()
                        broken += 1
                        wait = self.retry.wait_before(broken, resp, repeatable=True)
                        if wait is None:
                            raise problem_of(resp)
                        time.sleep(wait)
                        continue
                    for line in resp.iter_lines():
                        event = stream.feed(line)
                        if event is None:
                            continue
                        broken = 0
                        yield event
                        if stream.finished:
                            return
            except httpx.TransportError as err:
                failure = err
            # The connection ended before `done`: reopen it.
            broken += 1
            if broken > self.retry.max_retries:
                raise broken_stream(f"{self._http.base_url}{path}", failure) from failure
            time.sleep(self.retry.backoff_for(broken))
