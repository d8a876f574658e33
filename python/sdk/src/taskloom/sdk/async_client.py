"""The asynchronous Python client of Taskloom's REST gateway: `TaskloomClient`'s calls with
`await`, for asyncio (or trio) programs.

    async with AsyncTaskloomClient("http://127.0.0.1:8000", api_key="...") as tl:
        task = await tl.submit_task("echo", {"q": "hello"})
        async for event in tl.stream_events(task.id):
            print(event.event, event.data)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any, TypeVar

import anyio
import httpx

from taskloom.sdk import calls
from taskloom.sdk.calls import Call
from taskloom.sdk.client import STREAM_TIMEOUT
from taskloom.sdk.errors import TaskloomError, problem_of
from taskloom.sdk.events import Event, ResumableStream, broken_stream
from taskloom.sdk.models import Agent, Task, TaskPage, TaskRequest, Workflow, WorkflowPage
from taskloom.sdk.retry import RetryPolicy

T = TypeVar("T")


class AsyncTaskloomClient:
    """Submit, read, cancel and stream Taskloom tasks and workflows over the REST gateway."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.retry = retry or RetryPolicy()
        self._http = httpx.AsyncClient(
            base_url=base_url, headers=headers, timeout=timeout, transport=transport
        )

    async def __aenter__(self) -> AsyncTaskloomClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(self, call: Call[T]) -> T:
        retry = 0
        while True:
            try:
                resp = await self._http.request(call.method, call.path, **call.request_args())
            except httpx.TransportError as err:
                raise TaskloomError.unreachable(self._http.base_url, err) from err
            if resp.is_success:
                return call.read(resp)
            retry += 1
            wait = self.retry.wait_before(retry, resp, call.repeatable)
            if wait is None:
                raise problem_of(resp)
            await anyio.sleep(wait)

    async def submit_task(self, agent: str, input: Any = None, **options: Any) -> Task:
        return await self._call(calls.submit_task(TaskRequest(agent=agent, input=input, **options)))

    async def submit_tasks(self, tasks: Iterable[TaskRequest | Mapping[str, Any]]) -> list[Task]:
        return await self._call(calls.submit_tasks(TaskRequest.model_validate(t) for t in tasks))

    async def get_task(self, task_id: str) -> Task:
        return await self._call(calls.get_task(task_id))

    async def list_tasks(self, **filters: Any) -> TaskPage:
        """One page (filters: status, agent, page_size, page_token)."""
        return await self._call(calls.list_tasks(**filters))

    async def cancel_task(self, task_id: str, reason: str = "") -> Task:
        return await self._call(calls.cancel_task(task_id, reason))

    def stream_events(self, task_id: str, *, last_event_id: str = "") -> AsyncIterator[Event]:
        return self._stream(f"/v1/tasks/{task_id}/events", ResumableStream(last_event_id))

    async def wait_task(self, task_id: str) -> Task:
        async for event in self.stream_events(task_id):
            if event.event == "done":
                return event.task()
        raise AssertionError("a task stream ends with done")  # pragma: no cover

    async def list_agents(self) -> list[Agent]:
        return await self._call(calls.list_agents())

    async def get_agent(self, name: str) -> Agent:
        return await self._call(calls.get_agent(name))

    async def submit_workflow(
        self, spec: Mapping[str, Any] | str, *, idempotency_key: str | None = None
    ) -> Workflow:
        return await self._call(calls.submit_workflow(spec, idempotency_key))

    async def get_workflow(self, workflow_id: str) -> Workflow:
        return await self._call(calls.get_workflow(workflow_id))

    async def list_workflows(self, **filters: Any) -> WorkflowPage:
        """One page (filters: status, name, page_size, page_token)."""
        return await self._call(calls.list_workflows(**filters))

    async def cancel_workflow(self, workflow_id: str, reason: str = "") -> Workflow:
        return await self._call(calls.cancel_workflow(workflow_id, reason))

    def stream_workflow_events(
        self, workflow_id: str, *, last_event_id: str = ""
    ) -> AsyncIterator[Event]:
        return self._stream(f"/v1/workflows/{workflow_id}/events", ResumableStream(last_event_id))

    async def wait_workflow(self, workflow_id: str) -> Workflow:
        async for event in self.stream_workflow_events(workflow_id):
            if event.event == "done":
                return event.workflow()
        raise AssertionError("a workflow stream ends with done")  # pragma: no cover

    async def _stream(self, path: str, stream: ResumableStream) -> AsyncIterator[Event]:
        """As TaskloomClient._stream."""
        broken = 0
        failure: Exception | None = None
        while True:
            try:
                async with self._http.stream(
                    "GET", path, headers=stream.headers(), timeout=STREAM_TIMEOUT
                ) as resp:
                    if not resp.is_success:
                        await resp.aread()
                        broken += 1
                        wait = self.retry.wait_before(broken, resp, repeatable=True)
                        if wait is None:
                            raise problem_of(resp)
                        await anyio.sleep(wait)
                        continue
                    async for line in resp.aiter_lines():
                        event = stream.feed(line)
                        if event is None:
                            continue
                        broken = 0
                        yield event
                        if stream.finished:
                            return
            except httpx.TransportError as err:
                failure = err
            broken += 1
            if broken > self.retry.max_retries:
                raise broken_stream(f"{self._http.base_url}{path}", failure) from failure
            await anyio.sleep(self.retry.backoff_for(broken))
