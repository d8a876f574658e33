"""Test support: a fake orchestrator (a real grpc.aio server on a loopback port) and a
gateway served by uvicorn in a background thread. Used by the gateway's and the SDK's tests.

The fake keeps tasks in memory; watching a task "runs" it: the input's words (or its JSON
text) come back as chunks and the task succeeds with `{"echo": input}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import uvicorn
from google.protobuf import any_pb2, json_format, timestamp_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from taskloom.gateway.app import create_app
from taskloom.gateway.config import Settings
from taskloom.v1 import common_pb2, orchestrator_pb2, orchestrator_pb2_grpc

AGENTS = [
    common_pb2.AgentInfo(
        name="echo",
        description="Repeats its input.",
        provider="simulated",
        model="sim-1",
        tools=["clock"],
    )
]


def rich_error(
    code: int,
    reason: str,
    message: str,
    *,
    metadata: dict[str, str] | None = None,
    fields: dict[str, str] | None = None,
) -> grpc.Status:
    """A status carrying ErrorInfo (and BadRequest when fields are given), as Taskloom sends."""
    details = []
    info = any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason=reason, domain="taskloom.dev", metadata=metadata))
    details.append(info)
    if fields:
        bad = any_pb2.Any()
        bad.Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
                    for f, d in fields.items()
                ]
            )
        )
        details.append(bad)
    return rpc_status.to_status(status_pb2.Status(code=code, message=message, details=details))


class FakeOrchestrator(orchestrator_pb2_grpc.OrchestratorServiceServicer):
    """Tasks in memory; workflow methods stay UNIMPLEMENTED, as in the real one for now."""

    def __init__(self) -> None:
        self.tasks: dict[str, common_pb2.Task] = {}
        self.by_key: dict[tuple[str, str], str] = {}
        self.queue_full = False
        self.reject_field = ""  # when set, SubmitTask answers INVALID_ARGUMENT naming it
        self.last_metadata: dict[str, str] = {}
        # When set, WatchTask sends the task's status and then holds the stream open (as for
        # a task that never finishes) until the caller goes away; `open_watches` counts them.
        self.hold_watches = False
        self.open_watches = 0
        self.usage_rows: list[orchestrator_pb2.UsageRow] = []
        self.usage_requests: list[orchestrator_pb2.GetUsageRequest] = []

    def _now(self) -> timestamp_pb2.Timestamp:
        ts = timestamp_pb2.Timestamp()
        ts.GetCurrentTime()
        return ts

    async def _abort(self, context: grpc.aio.ServicerContext, status: grpc.Status) -> None:
        await context.abort_with_status(status)

    async def _task(self, task_id: str, context: grpc.aio.ServicerContext) -> common_pb2.Task:
        task = self.tasks.get(task_id)
        if task is None:
            await self._abort(
                context,
                rich_error(code_pb2.NOT_FOUND, "TASK_NOT_FOUND", f"Task {task_id} does not exist."),
            )
        assert task is not None
        return task

    async def SubmitTask(self, request: Any, context: Any) -> Any:
        self.last_metadata = {k: str(v) for k, v in context.invocation_metadata() or ()}
        spec = request.task
        bad_field = "task.agent" if not spec.agent else self.reject_field
        if bad_field:
            await self._abort(
                context,
                rich_error(
                    code_pb2.INVALID_ARGUMENT,
                    "INVALID_ARGUMENT",
                    f"The task's {bad_field} is invalid.",
                    fields={bad_field: "is invalid"},
                ),
            )
        if spec.agent not in {a.name for a in AGENTS}:
            await self._abort(
                context,
                rich_error(
                    code_pb2.NOT_FOUND,
                    "AGENT_NOT_FOUND",
                    f"No worker has registered agent {spec.agent!r}.",
                ),
            )
        if self.queue_full:
            await self._abort(
                context,
                rich_error(
                    code_pb2.RESOURCE_EXHAUSTED,
                    "QUEUE_FULL",
                    "The queue is full.",
                    metadata={"retry_after_ms": "2500"},
                ),
            )
        key = (spec.tenant, spec.idempotency_key)
        if spec.idempotency_key and key in self.by_key:
            task = self.tasks[self.by_key[key]]
            return orchestrator_pb2.SubmitTaskResponse(task=task, existing=True)
        task = common_pb2.Task(
            id=uuid.uuid4().hex,
            agent=spec.agent,
            input=spec.input,
            status=common_pb2.TASK_STATUS_QUEUED,
            tenant=spec.tenant,
            priority=spec.priority,
            labels=spec.labels,
            idempotency_key=spec.idempotency_key,
            max_attempts=spec.retry.max_attempts or 3,
            timeout=spec.timeout,
            created_at=self._now(),
        )
        self.tasks[task.id] = task
        if spec.idempotency_key:
            self.by_key[key] = task.id
        return orchestrator_pb2.SubmitTaskResponse(task=task)

    async def GetTask(self, request: Any, context: Any) -> Any:
        return orchestrator_pb2.GetTaskResponse(task=await self._task(request.id, context))

    async def ListTasks(self, request: Any, context: Any) -> Any:
        tasks = [
            t
            for t in self.tasks.values()
            if (not request.tenant or t.tenant == request.tenant)
            and (not request.status or t.status == request.status)
            and (not request.agent or t.agent == request.agent)
        ]
        start = int(request.page_token or 0)
        size = request.page_size or 100
        page = tasks[start : start + size]
        more = start + size < len(tasks)
        return orchestrator_pb2.ListTasksResponse(
            tasks=page, next_page_token=str(start + size) if more else ""
        )

    async def CancelTask(self, request: Any, context: Any) -> Any:
        task = await self._task(request.id, context)
        if task.status not in (common_pb2.TASK_STATUS_QUEUED, common_pb2.TASK_STATUS_RUNNING):
            await self._abort(
                context,
                rich_error(
                    code_pb2.FAILED_PRECONDITION,
                    "TASK_FINISHED",
                    f"Task {task.id} has already finished.",
                ),
            )
        task.status = common_pb2.TASK_STATUS_CANCELLED
        task.finished_at.CopyFrom(self._now())
        return orchestrator_pb2.CancelTaskResponse(task=task)

    async def WatchTask(self, request: Any, context: Any) -> Any:
        task = await self._task(request.id, context)
        ev = orchestrator_pb2.TaskEvent

        def event(**kw: Any) -> orchestrator_pb2.WatchTaskResponse:
            return orchestrator_pb2.WatchTaskResponse(event=ev(task_id=task.id, **kw))

        yield event(type=orchestrator_pb2.TASK_EVENT_TYPE_STATUS, status=task.status)
        if self.hold_watches:
            self.open_watches += 1
            try:
                await asyncio.Event().wait()  # until the call is cancelled
            finally:
                self.open_watches -= 1
        if task.status == common_pb2.TASK_STATUS_QUEUED:
            task.status = common_pb2.TASK_STATUS_RUNNING
            task.attempts = 1
            task.worker_id = "fake-worker"
            task.started_at.CopyFrom(self._now())
            yield event(type=orchestrator_pb2.TASK_EVENT_TYPE_STATUS, status=task.status)
            value = json_format.MessageToDict(task.input) if task.input.WhichOneof("kind") else ""
            words = value.split() if isinstance(value, str) else [str(value)]
            for seq, word in enumerate(words):
                yield event(
                    type=orchestrator_pb2.TASK_EVENT_TYPE_CHUNK,
                    chunk=word,
                    chunk_seq=seq,
                    attempt=1,
                )
            task.status = common_pb2.TASK_STATUS_SUCCEEDED
            task.result.struct_value.update({"echo": value})
            task.usage.completion_tokens = len(words)
            task.finished_at.CopyFrom(self._now())
            yield event(type=orchestrator_pb2.TASK_EVENT_TYPE_STATUS, status=task.status)
        yield event(type=orchestrator_pb2.TASK_EVENT_TYPE_DONE, status=task.status, task=task)

    async def ListAgents(self, request: Any, context: Any) -> Any:
        return orchestrator_pb2.ListAgentsResponse(agents=AGENTS)

    async def GetUsage(self, request: Any, context: Any) -> Any:
        """Answers `usage_rows` as they are (the real one filters them by the request)."""
        self.usage_requests.append(request)
        return orchestrator_pb2.GetUsageResponse(
            rows=self.usage_rows, since=request.since, until=request.until
        )


class _LoopThread:
    """An asyncio event loop running in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=10)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()


@contextlib.contextmanager
def serve_fake_orchestrator() -> Iterator[tuple[FakeOrchestrator, str]]:
    """Yield the fake and its `127.0.0.1:PORT` address while its server runs."""
    fake = FakeOrchestrator()
    runner = _LoopThread()

    async def start() -> tuple[grpc.aio.Server, int]:
        server = grpc.aio.server()
        orchestrator_pb2_grpc.add_OrchestratorServiceServicer_to_server(fake, server)
        health_servicer = health.aio.HealthServicer()
        await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        return server, port

    server, port = runner.run(start())
    try:
        yield fake, f"127.0.0.1:{port}"
    finally:
        runner.run(server.stop(grace=None))
        runner.stop()


def unused_address() -> str:
    """A loopback address with nothing listening on it (the port was free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


@contextlib.contextmanager
def serve_gateway(settings: Settings) -> Iterator[str]:
    """Serve the gateway with uvicorn on a free loopback port; yield its base URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        config = uvicorn.Config(create_app(settings), log_level="warning", lifespan="on")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 10
            while not server.started:
                if not thread.is_alive() or time.monotonic() > deadline:
                    raise RuntimeError("the gateway did not start")
                time.sleep(0.01)
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            thread.join(timeout=10)
