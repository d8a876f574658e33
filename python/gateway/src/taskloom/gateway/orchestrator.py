"""The gateway's gRPC client of the orchestrator: one channel per app, one deadline per call,
and the caller's trace context in the metadata of every call.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2

from taskloom.gateway.telemetry import ORCHESTRATOR_ERRORS, TRACEPARENT
from taskloom.v1 import common_pb2, orchestrator_pb2, orchestrator_pb2_grpc

Request = TypeVar("Request", bound=Message)
Response = TypeVar("Response", bound=Message)


class Orchestrator:
    """The channel to the orchestrator, opened at app start and closed at shutdown."""

    def __init__(self, addr: str, timeout: float) -> None:
        self.addr = addr
        self.timeout = timeout
        self.channel = grpc.aio.insecure_channel(addr)
        self.stub = orchestrator_pb2_grpc.OrchestratorServiceStub(self.channel)
        # The standard health check, called directly: the typing stubs of HealthStub
        # declare no methods.
        self.health_check = self.channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )

    async def close(self) -> None:
        await self.channel.close(grace=None)

    async def serving(self, deadline_seconds: float) -> bool:
        """Whether the orchestrator's grpc.health.v1 check answers SERVING."""
        try:
            resp: health_pb2.HealthCheckResponse = await self.health_check(
                health_pb2.HealthCheckRequest(), timeout=deadline_seconds
            )
        except grpc.aio.AioRpcError:
            return False
        return bool(resp.status == health_pb2.HealthCheckResponse.SERVING)

    def session(self, traceparent: str) -> OrchestratorSession:
        return OrchestratorSession(self.stub, ((TRACEPARENT, traceparent),), self.timeout)


@dataclass(frozen=True)
class OrchestratorSession:
    """Orchestrator calls made on behalf of one HTTP request."""

    stub: orchestrator_pb2_grpc.OrchestratorServiceAsyncStub
    metadata: tuple[tuple[str, str], ...]
    timeout: float

    async def _unary(
        self, method: grpc.aio.UnaryUnaryMultiCallable[Request, Response], request: Request
    ) -> Response:
        try:
            return await method(request, timeout=self.timeout, metadata=self.metadata)
        except grpc.aio.AioRpcError as err:
            ORCHESTRATOR_ERRORS.labels(err.code().name).inc()
            raise

    async def submit_task(self, spec: common_pb2.TaskSpec) -> orchestrator_pb2.SubmitTaskResponse:
        return await self._unary(
            self.stub.SubmitTask, orchestrator_pb2.SubmitTaskRequest(task=spec)
        )

    async def get_task(self, task_id: str) -> common_pb2.Task:
        resp = await self._unary(self.stub.GetTask, orchestrator_pb2.GetTaskRequest(id=task_id))
        return resp.task

    async def list_tasks(
        self, request: orchestrator_pb2.ListTasksRequest
    ) -> orchestrator_pb2.ListTasksResponse:
        return await self._unary(self.stub.ListTasks, request)

    async def cancel_task(self, task_id: str, reason: str) -> common_pb2.Task:
        req = orchestrator_pb2.CancelTaskRequest(id=task_id, reason=reason)
        resp = await self._unary(self.stub.CancelTask, req)
        return resp.task

    async def list_agents(self) -> list[common_pb2.AgentInfo]:
        resp = await self._unary(self.stub.ListAgents, orchestrator_pb2.ListAgentsRequest())
        return list(resp.agents)

    async def submit_workflow(
        self, spec: orchestrator_pb2.WorkflowSpec
    ) -> orchestrator_pb2.SubmitWorkflowResponse:
        req = orchestrator_pb2.SubmitWorkflowRequest(workflow=spec)
        return await self._unary(self.stub.SubmitWorkflow, req)

    async def get_workflow(self, workflow_id: str) -> orchestrator_pb2.Workflow:
        req = orchestrator_pb2.GetWorkflowRequest(id=workflow_id)
        return (await self._unary(self.stub.GetWorkflow, req)).workflow

    async def cancel_workflow(self, workflow_id: str, reason: str) -> orchestrator_pb2.Workflow:
        req = orchestrator_pb2.CancelWorkflowRequest(id=workflow_id, reason=reason)
        return (await self._unary(self.stub.CancelWorkflow, req)).workflow

    async def watch_task(self, task_id: str) -> EventStream:
        """Open WatchTask and read its first event, so a bad id fails before streaming starts.

        Watch streams have no deadline: they last as long as the task.
        """
        call = self.stub.WatchTask(
            orchestrator_pb2.WatchTaskRequest(id=task_id), metadata=self.metadata
        )
        return await EventStream.open(call)

    async def watch_workflow(self, workflow_id: str) -> EventStream:
        call = self.stub.WatchWorkflow(
            orchestrator_pb2.WatchWorkflowRequest(id=workflow_id), metadata=self.metadata
        )
        return await EventStream.open(call)


class EventStream:
    """A server-streaming call whose first message has been read already."""

    def __init__(self, call: Any, first: Any) -> None:
        self._call = call
        self._first = first

    @classmethod
    async def open(cls, call: Any) -> EventStream:
        try:
            first = await call.read()
        except grpc.aio.AioRpcError as err:
            ORCHESTRATOR_ERRORS.labels(err.code().name).inc()
            raise
        if first is grpc.aio.EOF:
            first = None
        return cls(call, first)

    async def events(self) -> AsyncIterator[Any]:
        """The events of the stream (each response's `event`); errors raise AioRpcError."""
        try:
            if self._first is None:
                return
            yield self._first.event
            while True:
                msg = await self._call.read()
                if msg is grpc.aio.EOF:
                    return
                yield msg.event
        finally:
            self.cancel()

    def cancel(self) -> None:
        self._call.cancel()
