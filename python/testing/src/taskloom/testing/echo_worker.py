"""A small agent worker for tests of the real orchestrator: it speaks the WorkerHub
protocol (register, credits, heartbeats, chunks, results, cancels) and runs the agents of
`taskloom.testing.agents`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import grpc

from taskloom.testing.agents import AGENTS, ECHO, WAIT, echo
from taskloom.v1 import common_pb2, worker_hub_pb2, worker_hub_pb2_grpc

CONCURRENCY = 64


class EchoWorker:
    """One session with the orchestrator at `addr`, until `stop()`."""

    def __init__(self, addr: str, worker_id: str = "echo-worker") -> None:
        self._addr = addr
        self._worker_id = worker_id
        self._outbox: asyncio.Queue[worker_hub_pb2.SessionRequest | None] = asyncio.Queue()
        self._waiting: dict[str, worker_hub_pb2.Assignment] = {}  # by lease id
        self.registered = asyncio.Event()
        self._session: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._session = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self._outbox.put_nowait(None)
        if self._session is not None:
            self._session.cancel()
            with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
                await self._session

    def _send(self, message: worker_hub_pb2.SessionRequest) -> None:
        self._outbox.put_nowait(message)

    async def _run(self) -> None:
        async def requests() -> AsyncIterator[worker_hub_pb2.SessionRequest]:
            while (msg := await self._outbox.get()) is not None:
                yield msg

        register = worker_hub_pb2.Register(
            worker_id=self._worker_id, agents=AGENTS, concurrency=CONCURRENCY
        )
        self._send(worker_hub_pb2.SessionRequest(register=register))
        self._grant(CONCURRENCY)
        async with grpc.aio.insecure_channel(self._addr) as channel:
            call = worker_hub_pb2_grpc.WorkerHubServiceStub(channel).Session(requests())
            beats: asyncio.Task[None] | None = None
            try:
                async for resp in call:
                    kind = resp.WhichOneof("msg")
                    if kind == "registered":
                        interval = resp.registered.heartbeat_interval.ToTimedelta()
                        beats = asyncio.create_task(self._heartbeat(interval.total_seconds()))
                        self.registered.set()
                    elif kind == "assignment":
                        self._assigned(resp.assignment)
                    elif kind == "cancel":
                        self._cancelled(resp.cancel)
            finally:
                if beats is not None:
                    beats.cancel()

    async def _heartbeat(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s or 1.0)
            beat = worker_hub_pb2.Heartbeat(lease_ids=list(self._waiting))
            self._send(worker_hub_pb2.SessionRequest(heartbeat=beat))

    def _assigned(self, a: worker_hub_pb2.Assignment) -> None:
        if a.task.agent == WAIT.name:
            self._waiting[a.lease_id] = a
            return
        if a.task.agent != ECHO.name:
            error = common_pb2.TaskError(
                reason=common_pb2.ERROR_REASON_AGENT_ERROR,
                message=f"unknown agent {a.task.agent}",
            )
            self._result(worker_hub_pb2.TaskResult(error=error), a)
            return
        words, output = echo(a.task.input)
        for seq, word in enumerate(words):
            chunk = worker_hub_pb2.TaskChunk(
                task_id=a.task.id, lease_id=a.lease_id, seq=seq, text=word
            )
            self._send(worker_hub_pb2.SessionRequest(chunk=chunk))
        usage = common_pb2.TokenUsage(completion_tokens=len(words))
        self._result(worker_hub_pb2.TaskResult(output=output, usage=usage), a)

    def _cancelled(self, cancel: worker_hub_pb2.CancelAssignment) -> None:
        a = self._waiting.pop(cancel.lease_id, None)
        if a is not None:
            error = common_pb2.TaskError(
                reason=common_pb2.ERROR_REASON_CANCELLED, message="cancelled by the orchestrator"
            )
            self._result(worker_hub_pb2.TaskResult(error=error), a)

    def _result(self, result: worker_hub_pb2.TaskResult, a: worker_hub_pb2.Assignment) -> None:
        result.task_id, result.lease_id = a.task.id, a.lease_id
        self._send(worker_hub_pb2.SessionRequest(result=result))
        self._grant(1)

    def _grant(self, credits: int) -> None:
        grant = worker_hub_pb2.CreditGrant(credits=credits)
        self._send(worker_hub_pb2.SessionRequest(credit=grant))
