"""The worker's session with the orchestrator over `WorkerHubService.Session`.

Protocol: send Register, receive Registered, grant `concurrency` credits; each Assignment
uses a credit and runs as an asyncio task that streams TaskChunks, then a TaskResult,
then grants the credit back. Heartbeats renew the leases of running tasks. On a broken
stream the worker abandons its tasks (the orchestrator requeues them) and reconnects with
capped, jittered exponential backoff. On stop it sends Drain, lets running tasks finish
(bounded), half-closes and returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import structlog
from opentelemetry.trace import SpanKind

from taskloom.agents import __version__, values
from taskloom.agents.journal import CHANNEL_OPTIONS, attempt_journal
from taskloom.agents.runtime import AgentError, AgentEvent, AgentRuntime
from taskloom.agents.streaming import ChunkStream, StreamOptions
from taskloom.agents.telemetry import Telemetry
from taskloom.agents.tools.base import TaskInfo
from taskloom.agents.usage_wire import token_usage
from taskloom.agents.wire_batch import MAX_BATCH_MESSAGES, assignments, batch_requests
from taskloom.sdk import tracing
from taskloom.sdk.channel import WORKER_HUB_SERVICE, orchestrator_channel
from taskloom.v1 import common_pb2, worker_hub_pb2, worker_hub_pb2_grpc

log = structlog.get_logger(__name__)

REGISTER_TIMEOUT_S = 10.0
HALF_CLOSE_WAIT_S = 2.0


@dataclass
class WorkerOptions:
    orchestrator_addr: str
    worker_id: str
    concurrency: int = 16
    # The orchestrator's worker token (sent as `authorization: Bearer`); empty: none.
    worker_token: str = ""
    drain_timeout_s: float = 10.0
    reconnect_initial_s: float = 0.5
    reconnect_max_s: float = 15.0
    heartbeat_interval_s: float = 5.0
    stream: StreamOptions = field(default_factory=StreamOptions)
    # Record completed turns and tool results with the orchestrator, and replay them.
    journal: bool = True
    hostname: str = field(default_factory=socket.gethostname)
    version: str = __version__


class _SessionClosed(Exception):
    """The orchestrator ended the stream."""


class _DeadlineExceeded(Exception):
    """The assignment's deadline passed while the agent was running."""


@dataclass
class _Running:
    assignment: worker_hub_pb2.Assignment
    task: asyncio.Task[None] | None = None
    # Why the task was cancelled: "hub" (CancelAssignment) or "abandoned" (stream broke).
    cancel_reason: str = ""
    # The task's credit was lent back to the hub while it waited on child tasks; it is
    # not granted again when the task ends.
    credit_lent: bool = False


def _trace_id(labels: Any) -> str | None:
    # W3C traceparent: version-traceid-parentid-flags.
    parts = labels.get("traceparent", "").split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None


class Worker:
    def __init__(self, options: WorkerOptions, runtime: AgentRuntime, telemetry: Telemetry) -> None:
        self._opts = options
        self.runtime = runtime
        self._telemetry = telemetry
        self._outbox: asyncio.Queue[worker_hub_pb2.SessionRequest | None] = asyncio.Queue()
        self._credits_back = _CreditsBack(self._outbox)
        self._running: dict[str, _Running] = {}
        self._draining = False
        self.registered = asyncio.Event()
        self.worker_id = options.worker_id
        self.sessions = 0

    @property
    def ready(self) -> bool:
        return self.registered.is_set()

    def running_lease_ids(self) -> list[str]:
        return list(self._running)

    def agent_infos(self) -> list[common_pb2.AgentInfo]:
        return [
            common_pb2.AgentInfo(
                name=spec.name,
                description=spec.description,
                provider=spec.provider,
                model=spec.model,
                tools=spec.tool_names(),
                max_tokens=spec.max_tokens,
            )
            for spec in self.runtime.catalog.values()
        ]

    def agents_changed(self) -> None:
        """After a hot reload: tell the orchestrator the agents now served, at once. Sent on
        the current session's outbox, after its Register; a session that is not open yet
        registers them itself."""
        self._send(agents=worker_hub_pb2.AgentsUpdate(agents=self.agent_infos()))

    async def run(self, stop: asyncio.Event) -> None:
        """Keep a session open until `stop` is set, then drain and return."""
        failures = 0
        while not stop.is_set():
            try:
                await self._session(stop)
                return  # drained after stop
            except (grpc.aio.AioRpcError, _SessionClosed, TimeoutError) as err:
                detail = err.details() if isinstance(err, grpc.aio.AioRpcError) else str(err)
                code = err.code().name if isinstance(err, grpc.aio.AioRpcError) else ""
                self._abandon_running()
                was_registered = self.ready
                self.registered.clear()
                if was_registered:
                    failures = 0
                else:
                    self._telemetry.session("failed")
                ceiling = min(
                    self._opts.reconnect_max_s, self._opts.reconnect_initial_s * 2**failures
                )
                delay = random.uniform(ceiling / 2, ceiling)
                failures += 1
                log.warning(
                    "orchestrator session lost, reconnecting",
                    addr=self._opts.orchestrator_addr,
                    code=code,
                    error=detail,
                    retry_in_s=round(delay, 3),
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
        self._abandon_running()

    async def _session(self, stop: asyncio.Event) -> None:
        self._outbox = asyncio.Queue()
        self._credits_back = _CreditsBack(self._outbox)
        self._draining = False
        # To the leader among the orchestrators named; a call waits for one to lead.
        channel = orchestrator_channel(
            self._opts.orchestrator_addr,
            WORKER_HUB_SERVICE,
            wait_for_ready=True,
            options=CHANNEL_OPTIONS,
        )
        async with channel:
            stub = worker_hub_pb2_grpc.WorkerHubServiceStub(channel)
            token = self._opts.worker_token
            metadata = (("authorization", f"Bearer {token}"),) if token else None
            call = stub.Session(self._requests(), metadata=metadata)
            self._send(
                register=worker_hub_pb2.Register(
                    worker_id=self.worker_id,
                    agents=self.agent_infos(),
                    concurrency=self._opts.concurrency,
                    hostname=self._opts.hostname,
                    version=self._opts.version,
                    batches=True,
                )
            )
            try:
                first = await asyncio.wait_for(call.read(), REGISTER_TIMEOUT_S)
                if (
                    not isinstance(first, worker_hub_pb2.SessionResponse)
                    or first.WhichOneof("msg") != "registered"
                ):
                    raise _SessionClosed("orchestrator did not answer Register with Registered")
                reg = first.registered
                self.worker_id = reg.worker_id or self.worker_id
                interval = reg.heartbeat_interval.ToTimedelta().total_seconds()
                heartbeat_s = interval if interval > 0 else self._opts.heartbeat_interval_s
                self.sessions += 1
                self._telemetry.session("registered")
                self.registered.set()
                log.info(
                    "registered with orchestrator",
                    addr=self._opts.orchestrator_addr,
                    worker_id=self.worker_id,
                    heartbeat_interval_s=heartbeat_s,
                    agents=list(self.runtime.catalog),
                )
                self._send(credit=worker_hub_pb2.CreditGrant(credits=self._opts.concurrency))
                reader = asyncio.create_task(self._read(call))
                beater = asyncio.create_task(self._heartbeat(heartbeat_s))
                stopper = asyncio.create_task(stop.wait())
                try:
                    done, _ = await asyncio.wait(
                        {reader, stopper}, return_when=asyncio.FIRST_COMPLETED
                    )
                    if reader in done:
                        reader.result()  # raises what broke the stream
                        raise _SessionClosed("orchestrator closed the session")
                    await self._drain(reader)
                finally:
                    for helper in (reader, beater, stopper):
                        helper.cancel()
            finally:
                call.cancel()

    async def _requests(self) -> AsyncIterator[worker_hub_pb2.SessionRequest]:
        # What queued while the previous message was written goes out batched (wire_batch).
        outbox = self._outbox
        while True:
            pending: list[worker_hub_pb2.SessionRequest] = []
            msg = await outbox.get()
            while msg is not None:
                pending.append(msg)
                if len(pending) >= MAX_BATCH_MESSAGES or outbox.empty():
                    break
                msg = outbox.get_nowait()
            for batched in batch_requests(pending):
                yield batched
            if msg is None:
                return  # half-close

    def _send(self, **kwargs: Any) -> None:
        self._outbox.put_nowait(worker_hub_pb2.SessionRequest(**kwargs))

    async def _read(self, call: Any) -> None:
        while True:
            resp = await call.read()
            if resp is grpc.aio.EOF:
                return
            kind = resp.WhichOneof("msg")
            if kind in ("assignment", "assignments"):
                for a in assignments(resp):
                    self._start(a)
            elif kind == "cancel":
                self._cancel(resp.cancel)
            else:
                log.warning("unexpected message from orchestrator", kind=kind)

    async def _heartbeat(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            self._send(heartbeat=worker_hub_pb2.Heartbeat(lease_ids=self.running_lease_ids()))

    async def _drain(self, reader: asyncio.Task[None]) -> None:
        self._draining = True
        self._send(drain=worker_hub_pb2.Drain())
        log.info("draining", running=len(self._running), timeout_s=self._opts.drain_timeout_s)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._opts.drain_timeout_s
        # Re-read the running set each round: an assignment may still arrive after Drain.
        while self._running and not reader.done() and (remaining := deadline - loop.time()) > 0:
            tasks = {r.task for r in self._running.values() if r.task is not None}
            await asyncio.wait(
                {*tasks, reader}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )
        if self._running:
            log.warning("drain timeout, abandoning tasks", count=len(self._running))
            self._abandon_running()
        self._outbox.put_nowait(None)  # half-close once every result is queued
        with contextlib.suppress(TimeoutError, grpc.aio.AioRpcError, _SessionClosed):
            await asyncio.wait_for(asyncio.shield(reader), HALF_CLOSE_WAIT_S)
        self.registered.clear()
        log.info("drained")

    def _start(self, assignment: worker_hub_pb2.Assignment) -> None:
        running = _Running(assignment)
        self._running[assignment.lease_id] = running
        running.task = asyncio.create_task(
            self._execute(running), name=f"task-{assignment.task.id}"
        )

    def _cancel(self, cancel: worker_hub_pb2.CancelAssignment) -> None:
        # The lease id is authoritative: a cancel of an older attempt must not stop a newer
        # attempt of the same task that now runs here under another lease.
        running = self._running.get(cancel.lease_id)
        if running is None or running.task is None:
            log.info(
                "cancel for a lease not running here",
                task_id=cancel.task_id,
                lease_id=cancel.lease_id,
            )
            return
        running.cancel_reason = "hub"
        running.task.cancel(cancel.reason or "cancelled by orchestrator")

    def _abandon_running(self) -> None:
        for running in list(self._running.values()):
            if running.task is not None and not running.task.done():
                running.cancel_reason = "abandoned"
                running.task.cancel()
        self._running.clear()

    async def _execute(self, running: _Running) -> None:
        a = running.assignment
        task = a.task
        context = {"task_id": task.id}
        if trace_id := _trace_id(task.labels):
            context["trace_id"] = trace_id
        # The run hangs under the orchestrator's assignment, whose context the label holds.
        with (
            structlog.contextvars.bound_contextvars(**context),
            tracing.span(
                "agent.run",
                kind=SpanKind.CONSUMER,
                attributes={
                    "taskloom.task_id": task.id,
                    "taskloom.agent": task.agent,
                    "taskloom.attempt": a.attempt,
                },
                context=tracing.context_from(task.labels),
            ),
        ):
            await self._execute_bound(running, a, task)

    async def _execute_bound(
        self, running: _Running, a: worker_hub_pb2.Assignment, task: common_pb2.Task
    ) -> None:
        outbox = self._outbox  # this session's stream, even if a new one opens meanwhile
        credits_back = self._credits_back

        def send(chunk: worker_hub_pb2.TaskChunk) -> None:
            outbox.put_nowait(worker_hub_pb2.SessionRequest(chunk=chunk))

        chunks = ChunkStream(send, task.id, a.lease_id, self._opts.stream)
        journal = attempt_journal(a, outbox) if self._opts.journal else None

        async def on_event(event: AgentEvent) -> None:
            chunks.event(event)

        @contextlib.asynccontextmanager
        async def suspend_credit() -> AsyncIterator[None]:
            # While this task waits on others, its slot may run them (a chain of agents
            # on a worker of concurrency 1); the lent credit is not granted again later.
            if not running.credit_lent and not self._draining:
                running.credit_lent = True
                outbox.put_nowait(
                    worker_hub_pb2.SessionRequest(credit=worker_hub_pb2.CreditGrant(credits=1))
                )
            yield

        info = TaskInfo(
            task_id=task.id,
            agent=task.agent,
            tenant=task.tenant or "default",
            labels=dict(task.labels),
            attempt=a.attempt,
            session_id=task.session_id,
        )

        result = worker_hub_pb2.TaskResult(task_id=task.id, lease_id=a.lease_id)
        outcome = "failed"
        started = time.monotonic()
        self._telemetry.task_started()
        log.info("task started", agent=task.agent, attempt=a.attempt, lease_id=a.lease_id)
        try:
            task_input = values.to_python(task.input) if task.HasField("input") else None
            try:
                stream = StreamOptions.for_task(task, task_input, self._opts.stream)
            except ValueError as err:
                raise AgentError(str(err), retryable=False) from None
            chunks.configure(stream)
            # At the deadline the agent is cancelled; the result still goes out below.
            deadline = asyncio.timeout_at(self._deadline(a))
            try:
                async with deadline:
                    run = await self.runtime.run(
                        task.agent, task_input, on_event, info, suspend_credit, journal
                    )
            except TimeoutError:
                if not deadline.expired():
                    raise  # the agent's own timeout: reported as a crash below
                raise _DeadlineExceeded() from None
            values.fill(result.output, run.output)
            result.usage.CopyFrom(
                token_usage(
                    run.usage, run.prompt_tokens, run.completion_tokens, run.cached_completions
                )
            )
            outcome = "succeeded"
        except AgentError as err:
            log.warning("task failed", error=str(err), retryable=err.retryable)
            chunks.error(str(err))
            result.error.CopyFrom(
                _error(common_pb2.ERROR_REASON_AGENT_ERROR, str(err), err.retryable)
            )
        except _DeadlineExceeded:
            # Not retryable: the orchestrator ends a task whose deadline passed as TIMED_OUT.
            outcome = "timed_out"
            log.warning("task deadline exceeded")
            result.error.CopyFrom(
                _error(
                    common_pb2.ERROR_REASON_DEADLINE_EXCEEDED,
                    "the task's deadline passed before the agent finished",
                    False,
                )
            )
        except asyncio.CancelledError:
            if running.cancel_reason != "hub":
                outcome = "abandoned"
                self._finish(task.agent, outcome, started)
                raise  # abandoned or shutting down: the orchestrator requeues the lease
            outcome = "cancelled"
            log.info("task cancelled by orchestrator")
            result.error.CopyFrom(
                _error(common_pb2.ERROR_REASON_CANCELLED, "cancelled by the orchestrator", False)
            )
        except Exception as err:  # a bug in an agent must not take the worker down
            log.exception("task crashed")
            result.error.CopyFrom(
                _error(common_pb2.ERROR_REASON_AGENT_ERROR, f"internal error: {err!r}", True)
            )
        self._finish(task.agent, outcome, started)
        chunks.flush()  # the last text goes out before the result
        if self._running.get(a.lease_id) is running:
            del self._running[a.lease_id]
            outbox.put_nowait(worker_hub_pb2.SessionRequest(result=result))
            if not self._draining and not running.credit_lent:
                credits_back.add(1)
        log.info("task finished", outcome=outcome, chunks=chunks.seq)

    @staticmethod
    def _deadline(a: worker_hub_pb2.Assignment) -> float | None:
        """The assignment's deadline on the event loop's clock; None when it has none."""
        if not a.HasField("deadline") or a.deadline.seconds <= 0:
            return None
        remaining = a.deadline.ToNanoseconds() / 1e9 - time.time()
        return asyncio.get_running_loop().time() + float(remaining)

    def _finish(self, agent: str, outcome: str, started: float) -> None:
        self._telemetry.task_finished(agent, outcome, time.monotonic() - started)


class _CreditsBack:
    """Credits of finished tasks, sent as one grant per turn of the event loop: tasks whose
    LLM calls end together cost one message instead of one each."""

    def __init__(self, outbox: asyncio.Queue[worker_hub_pb2.SessionRequest | None]) -> None:
        self._outbox = outbox
        self._pending = 0

    def add(self, credits: int) -> None:
        if self._pending == 0:
            asyncio.get_running_loop().call_soon(self._send)
        self._pending += credits

    def _send(self) -> None:
        credits, self._pending = self._pending, 0
        self._outbox.put_nowait(
            worker_hub_pb2.SessionRequest(credit=worker_hub_pb2.CreditGrant(credits=credits))
        )


def _error(
    reason: common_pb2.ErrorReason.ValueType, message: str, retryable: bool
) -> common_pb2.TaskError:
    return common_pb2.TaskError(reason=reason, message=message, retryable=retryable)
