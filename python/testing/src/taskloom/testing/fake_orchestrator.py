"""A fake orchestrator: a real grpc.aio server on a loopback port with tasks and workflows
in memory, for tests that want the gateway without the Go binary.

It follows the real orchestrator where the gateway's contract suite can tell (the suite runs
against both): tasks run on a built-in worker as soon as they are submitted (the agents of
`taskloom.testing.agents`), watchers get the current status, the chunks so far (or those
after `from_seq`), then what happens until `done`; lists are newest first; cancelled tasks
carry a CANCELLED error; an id of another tenant than the request's is NOT_FOUND; API keys
are kept in memory (`create_key` makes one), verified by `VerifyAPIKey`.
Workflows run their steps sequentially, in parallel or as a DAG, with the real engine's
output rules; templates, `map_over` and `exit_if` are the real engine's alone: the fake
answers UNIMPLEMENTED for them. Faults the real one shows only under load are switches:
`queue_full`, `reject_field`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import grpc
from google.protobuf import any_pb2, duration_pb2, struct_pb2, timestamp_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from taskloom.gateway import limits
from taskloom.sdk.channel import ORCHESTRATOR_SERVICE
from taskloom.testing.agents import AGENTS, ECHO, echo
from taskloom.testing.servers import LoopThread
from taskloom.v1 import common_pb2, orchestrator_pb2, orchestrator_pb2_grpc

# The proto states the default once (limits.proto); the fake follows it like the real thing.
_DEFAULT_PRIORITY = limits.default(common_pb2.TaskSpec, "priority")

DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_TIMEOUT_S = 300
TERMINAL = frozenset(
    {
        common_pb2.TASK_STATUS_SUCCEEDED,
        common_pb2.TASK_STATUS_FAILED,
        common_pb2.TASK_STATUS_CANCELLED,
        common_pb2.TASK_STATUS_TIMED_OUT,
    }
)
Context = grpc.aio.ServicerContext[object, object]


class Abort(Exception):
    """A call ends with this status (raised anywhere below a servicer method)."""

    def __init__(self, status: grpc.Status) -> None:
        super().__init__(status.details)
        self.status = status


def rich_error(
    code: int,
    reason: str,
    message: str,
    *,
    metadata: dict[str, str] | None = None,
    fields: dict[str, str] | None = None,
) -> Abort:
    """A status carrying ErrorInfo (and BadRequest when fields are given), as Taskloom sends."""
    info = any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason=reason, domain="taskloom.dev", metadata=metadata))
    details = [info]
    if fields:
        bad = any_pb2.Any()
        violations = [
            error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
            for f, d in fields.items()
        ]
        bad.Pack(error_details_pb2.BadRequest(field_violations=violations))
        details.append(bad)
    return Abort(
        rpc_status.to_status(status_pb2.Status(code=code, message=message, details=details))
    )


R = TypeVar("R")


def _answers_aborts(
    method: Callable[..., Coroutine[Any, Any, R]],
) -> Callable[..., Coroutine[Any, Any, R]]:
    """A unary servicer method whose Abort ends the call with its status."""

    @functools.wraps(method)
    async def call(self: Any, request: Any, context: Context) -> R:
        try:
            return await method(self, request, context)
        except Abort as abort:
            await context.abort_with_status(abort.status)
            raise

    return call


def _streams_aborts(
    method: Callable[..., AsyncIterator[R]],
) -> Callable[..., AsyncIterator[R]]:
    """A streaming servicer method whose Abort ends the call with its status."""

    @functools.wraps(method)
    async def call(self: Any, request: Any, context: Context) -> AsyncIterator[R]:
        try:
            async for item in method(self, request, context):
                yield item
        except Abort as abort:
            await context.abort_with_status(abort.status)
            raise

    return call


def _now() -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.GetCurrentTime()
    return ts


E = TypeVar("E")
T = TypeVar("T")


@dataclass
class _Journal(Generic[E]):
    """What happened to one task or workflow, in order, for its watchers."""

    events: list[E] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def append(self, event: E) -> None:
        async with self.changed:
            self.events.append(event)
            self.changed.notify_all()

    async def follow(self, start: int, ended: Callable[[], bool]) -> AsyncIterator[E]:
        """The events from `start` on, until `ended()` holds and all are read."""
        seen = start

        def more() -> bool:
            return seen < len(self.events) or ended()

        while True:
            async with self.changed:
                await self.changed.wait_for(more)
                fresh = self.events[seen:]
                seen = len(self.events)
            for event in fresh:
                yield event
            if not fresh and ended():
                return


class FakeOrchestrator(orchestrator_pb2_grpc.OrchestratorServiceServicer):
    def __init__(self, agent_limits: dict[str, int] | None = None) -> None:
        self.agent_limits = agent_limits or {}  # as --agent-limit: the most running at once
        self.tasks: dict[str, common_pb2.Task] = {}
        self.by_key: dict[tuple[str, str], str] = {}
        self.workflows: dict[str, orchestrator_pb2.Workflow] = {}
        self.workflows_by_key: dict[tuple[str, str], str] = {}
        self._journals: dict[str, _Journal[orchestrator_pb2.TaskEvent]] = {}
        self._workflow_journals: dict[str, _Journal[orchestrator_pb2.WorkflowEvent]] = {}
        self._runs: set[asyncio.Task[None]] = set()
        self.queue_full = False
        self.reject_field = ""  # when set, SubmitTask answers INVALID_ARGUMENT naming it
        self.last_metadata: dict[str, str] = {}
        self.submitted_labels: dict[str, str] = {}  # the labels of the last SubmitTask as sent
        self.open_watches = 0  # WatchTask calls in progress
        # GetUsage answers these rows as they are; the requests are kept for inspection.
        self.usage_rows: list[orchestrator_pb2.UsageRow] = []
        self.usage_requests: list[orchestrator_pb2.GetUsageRequest] = []
        self.keys: dict[str, orchestrator_pb2.APIKey] = {}  # by secret

    # Tasks.

    @_answers_aborts
    async def SubmitTask(
        self, request: orchestrator_pb2.SubmitTaskRequest, context: Context
    ) -> orchestrator_pb2.SubmitTaskResponse:
        self.last_metadata = {k: str(v) for k, v in context.invocation_metadata() or ()}
        self.submitted_labels = dict(request.task.labels)
        _label_traceparent(request.task.labels, context)
        task, existing = self._submit(request.task)
        return orchestrator_pb2.SubmitTaskResponse(task=task, existing=existing)

    def _check(self, spec: common_pb2.TaskSpec) -> None:
        bad_field = "task.agent" if not spec.agent else self.reject_field
        if bad_field:
            raise rich_error(
                code_pb2.INVALID_ARGUMENT,
                "INVALID_ARGUMENT",
                f"The task's {bad_field} is invalid.",
                fields={bad_field: "is invalid"},
            )
        if spec.agent not in {a.name for a in AGENTS}:
            raise rich_error(
                code_pb2.NOT_FOUND,
                "AGENT_NOT_FOUND",
                f"No worker has registered agent {spec.agent!r}.",
            )
        if self.queue_full:
            raise rich_error(
                code_pb2.RESOURCE_EXHAUSTED,
                "QUEUE_FULL",
                "The queue is full.",
                metadata={"retry_after_ms": "2500"},
            )

    def _submit(
        self, spec: common_pb2.TaskSpec, *, workflow_id: str = "", step_id: str = ""
    ) -> tuple[common_pb2.Task, bool]:
        self._check(spec)
        key = (spec.tenant, spec.idempotency_key)
        if spec.idempotency_key and key in self.by_key:
            return self.tasks[self.by_key[key]], True
        timeout = duration_pb2.Duration(seconds=DEFAULT_TIMEOUT_S)
        task = common_pb2.Task(
            id=uuid.uuid4().hex,
            agent=spec.agent,
            input=spec.input,
            status=common_pb2.TASK_STATUS_QUEUED,
            tenant=spec.tenant,
            priority=spec.priority if spec.HasField("priority") else _DEFAULT_PRIORITY,
            labels=spec.labels,
            idempotency_key=spec.idempotency_key,
            max_attempts=spec.retry.max_attempts or DEFAULT_MAX_ATTEMPTS,
            timeout=spec.timeout if spec.HasField("timeout") else timeout,
            created_at=_now(),
            workflow_id=workflow_id,
            step_id=step_id,
        )
        self.tasks[task.id] = task
        self._journals[task.id] = _Journal()
        if spec.idempotency_key:
            self.by_key[key] = task.id
        self._start(self._run_task(task))
        snapshot = common_pb2.Task()
        snapshot.CopyFrom(task)  # the task as submitted: it starts running at once
        return snapshot, False

    def _start(self, coro: Coroutine[Any, Any, None]) -> None:
        run = asyncio.get_running_loop().create_task(coro)
        self._runs.add(run)
        run.add_done_callback(self._runs.discard)

    async def _set_status(
        self, task: common_pb2.Task, status: common_pb2.TaskStatus.ValueType
    ) -> None:
        task.status = status
        if status in TERMINAL:
            task.finished_at.CopyFrom(_now())
        event = orchestrator_pb2.TaskEvent(
            task_id=task.id, type=orchestrator_pb2.TASK_EVENT_TYPE_STATUS, status=status
        )
        await self._journals[task.id].append(event)

    async def _run_task(self, task: common_pb2.Task) -> None:
        await asyncio.sleep(0)  # the submit is answered first, as a real dispatch would be
        if task.status != common_pb2.TASK_STATUS_QUEUED:
            return
        task.attempts = 1
        task.worker_id = "fake-worker"
        task.started_at.CopyFrom(_now())
        await self._set_status(task, common_pb2.TASK_STATUS_RUNNING)
        if task.agent != ECHO.name:
            return  # `wait`: runs until cancelled
        words, result = echo(task.input)
        for seq, word in enumerate(words):
            chunk = orchestrator_pb2.TaskEvent(
                task_id=task.id,
                type=orchestrator_pb2.TASK_EVENT_TYPE_CHUNK,
                chunk=word,
                chunk_seq=seq,
                attempt=1,
            )
            await self._journals[task.id].append(chunk)
        task.result.CopyFrom(result)
        task.usage.completion_tokens = len(words)
        await self._set_status(task, common_pb2.TASK_STATUS_SUCCEEDED)

    def _task(self, task_id: str, tenant: str = "") -> common_pb2.Task:
        task = self.tasks.get(task_id)
        if task is None or (tenant and task.tenant != tenant):
            raise rich_error(
                code_pb2.NOT_FOUND, "TASK_NOT_FOUND", f"Task {task_id} does not exist."
            )
        return task

    @_answers_aborts
    async def SubmitTasks(
        self, request: orchestrator_pb2.SubmitTasksRequest, context: Context
    ) -> orchestrator_pb2.SubmitTasksResponse:
        for spec in request.tasks:  # all or none: check every spec first
            self._check(spec)
            _label_traceparent(spec.labels, context)
        tasks = [self._submit(spec)[0] for spec in request.tasks]
        return orchestrator_pb2.SubmitTasksResponse(tasks=tasks)

    @_answers_aborts
    async def GetTask(
        self, request: orchestrator_pb2.GetTaskRequest, context: Context
    ) -> orchestrator_pb2.GetTaskResponse:
        return orchestrator_pb2.GetTaskResponse(task=self._task(request.id, request.tenant))

    @_answers_aborts
    async def ListTasks(
        self, request: orchestrator_pb2.ListTasksRequest, context: Context
    ) -> orchestrator_pb2.ListTasksResponse:
        tasks = [
            t
            for t in reversed(self.tasks.values())  # newest first
            if (not request.tenant or t.tenant == request.tenant)
            and (not request.status or t.status == request.status)
            and (not request.agent or t.agent == request.agent)
        ]
        page, token = _page(tasks, request.page_token, request.page_size)
        return orchestrator_pb2.ListTasksResponse(tasks=page, next_page_token=token)

    @_answers_aborts
    async def CancelTask(
        self, request: orchestrator_pb2.CancelTaskRequest, context: Context
    ) -> orchestrator_pb2.CancelTaskResponse:
        task = await self._cancel(self._task(request.id, request.tenant), request.reason)
        return orchestrator_pb2.CancelTaskResponse(task=task)

    async def _cancel(self, task: common_pb2.Task, reason: str) -> common_pb2.Task:
        if task.status in TERMINAL:
            raise rich_error(
                code_pb2.FAILED_PRECONDITION,
                "TASK_FINISHED",
                f"task {task.id} already finished with status {task.status}",
            )
        task.error.CopyFrom(
            common_pb2.TaskError(reason=common_pb2.ERROR_REASON_CANCELLED, message=reason)
        )
        await self._set_status(task, common_pb2.TASK_STATUS_CANCELLED)
        return task

    @_streams_aborts
    async def WatchTask(
        self, request: orchestrator_pb2.WatchTaskRequest, context: Context
    ) -> AsyncIterator[orchestrator_pb2.WatchTaskResponse]:
        task = self._task(request.id, request.tenant)
        had = request.from_seq if request.HasField("from_seq") else -1
        self.open_watches += 1
        try:
            async for event in self._follow(task):
                chunk = event.type == orchestrator_pb2.TASK_EVENT_TYPE_CHUNK
                if chunk and event.attempt == request.from_attempt and event.chunk_seq <= had:
                    continue  # the watcher has it (SSE Last-Event-ID)
                yield orchestrator_pb2.WatchTaskResponse(event=event)
        finally:
            self.open_watches -= 1

    async def _follow(self, task: common_pb2.Task) -> AsyncIterator[orchestrator_pb2.TaskEvent]:
        """The current status, the chunks so far, what happens next, then `done`."""
        journal = self._journals[task.id]
        async with journal.changed:
            seen = len(journal.events)
            replay = [e for e in journal.events if e.type == orchestrator_pb2.TASK_EVENT_TYPE_CHUNK]
            status = task.status
        ev = orchestrator_pb2.TaskEvent
        yield ev(task_id=task.id, type=orchestrator_pb2.TASK_EVENT_TYPE_STATUS, status=status)
        for event in replay:
            yield event
        if status not in TERMINAL:
            async for event in journal.follow(seen, lambda: task.status in TERMINAL):
                yield event
        yield ev(
            task_id=task.id,
            type=orchestrator_pb2.TASK_EVENT_TYPE_DONE,
            status=task.status,
            task=task,
        )

    async def ListAgents(
        self, request: orchestrator_pb2.ListAgentsRequest, context: Context
    ) -> orchestrator_pb2.ListAgentsResponse:
        agents = []
        for agent in sorted(AGENTS, key=lambda a: a.name):
            info = common_pb2.AgentInfo()
            info.CopyFrom(agent)
            info.max_running = self.agent_limits.get(agent.name, 0)
            agents.append(info)
        return orchestrator_pb2.ListAgentsResponse(agents=agents)

    async def GetUsage(
        self, request: orchestrator_pb2.GetUsageRequest, context: Context
    ) -> orchestrator_pb2.GetUsageResponse:
        self.usage_requests.append(request)
        return orchestrator_pb2.GetUsageResponse(
            rows=self.usage_rows, since=request.since, until=request.until
        )

    # Workflows.

    @_answers_aborts
    async def SubmitWorkflow(
        self, request: orchestrator_pb2.SubmitWorkflowRequest, context: Context
    ) -> orchestrator_pb2.SubmitWorkflowResponse:
        spec = request.workflow
        _label_traceparent(spec.labels, context)
        key = (spec.tenant, spec.idempotency_key)
        if spec.idempotency_key and key in self.workflows_by_key:
            existing = self.workflows[self.workflows_by_key[key]]
            return orchestrator_pb2.SubmitWorkflowResponse(workflow=existing, existing=True)
        mode, upstream = _validate(spec)
        spec.mode = mode
        wf = orchestrator_pb2.Workflow(
            id=uuid.uuid4().hex,
            status=orchestrator_pb2.WORKFLOW_STATUS_RUNNING,
            spec=spec,
            steps=[orchestrator_pb2.StepState(step_id=s.id) for s in spec.steps],
            created_at=_now(),
        )
        self.workflows[wf.id] = wf
        self._workflow_journals[wf.id] = _Journal()
        if spec.idempotency_key:
            self.workflows_by_key[key] = wf.id
        self._start(self._run_workflow(wf, upstream))
        snapshot = orchestrator_pb2.Workflow()
        snapshot.CopyFrom(wf)
        return orchestrator_pb2.SubmitWorkflowResponse(workflow=snapshot)

    async def _run_workflow(
        self, wf: orchestrator_pb2.Workflow, upstream: dict[str, set[str]]
    ) -> None:
        states = {s.step_id: s for s in wf.steps}
        steps = {s.id: s for s in wf.spec.steps}
        running: dict[str, common_pb2.Task] = {}
        while wf.status == orchestrator_pb2.WORKFLOW_STATUS_RUNNING:
            done = {i for i, s in states.items() if s.status == common_pb2.TASK_STATUS_SUCCEEDED}
            for step_id, state in states.items():
                if state.status == 0 and step_id not in running and upstream[step_id] <= done:
                    running[step_id] = self._start_step(wf, steps[step_id], state)
            for step_id, task in list(running.items()):
                if task.status in TERMINAL:
                    del running[step_id]
                    self._finish_step(states[step_id], task)
            failed = [
                s
                for s in states.values()
                if s.status in TERMINAL - {common_pb2.TASK_STATUS_SUCCEEDED}
            ]
            if failed:
                wf.error.CopyFrom(
                    common_pb2.TaskError(
                        reason=failed[0].error.reason or common_pb2.ERROR_REASON_AGENT_ERROR,
                        message=f"step {failed[0].step_id} failed: {failed[0].error.message}",
                    )
                )
                for task in running.values():
                    if task.status not in TERMINAL:
                        await self._cancel(task, "workflow failed")
                self._end_workflow(wf, orchestrator_pb2.WORKFLOW_STATUS_FAILED)
            elif all(s.status == common_pb2.TASK_STATUS_SUCCEEDED for s in states.values()):
                wf.output.CopyFrom(_workflow_output(wf, upstream))
                self._end_workflow(wf, orchestrator_pb2.WORKFLOW_STATUS_SUCCEEDED)
            elif running:
                await self._step_changed(list(running.values()))
        await self._end_workflow_journal(wf)

    def _start_step(
        self,
        wf: orchestrator_pb2.Workflow,
        step: orchestrator_pb2.Step,
        state: orchestrator_pb2.StepState,
    ) -> common_pb2.Task:
        spec = common_pb2.TaskSpec(
            agent=step.agent,
            input=step.input,
            tenant=wf.spec.tenant,
            priority=step.priority if step.HasField("priority") else _DEFAULT_PRIORITY,
            labels=wf.spec.labels,
            idempotency_key=f"taskloom.workflow/{wf.id}/{step.id}/0",
        )
        snapshot, _ = self._submit(spec, workflow_id=wf.id, step_id=step.id)
        state.status = common_pb2.TASK_STATUS_RUNNING
        state.task_ids.append(snapshot.id)
        state.started_at.CopyFrom(_now())
        task = self.tasks[snapshot.id]
        self._start(self._forward(wf, step.id, task))
        return task

    async def _forward(
        self, wf: orchestrator_pb2.Workflow, step_id: str, task: common_pb2.Task
    ) -> None:
        """A step task's events into the workflow's journal, tagged with the step."""
        journal = self._workflow_journals[wf.id]
        async for event in self._follow(task):
            await journal.append(
                orchestrator_pb2.WorkflowEvent(workflow_id=wf.id, step_id=step_id, task_event=event)
            )

    @staticmethod
    def _finish_step(state: orchestrator_pb2.StepState, task: common_pb2.Task) -> None:
        state.status = task.status
        state.finished_at.CopyFrom(_now())
        if task.status == common_pb2.TASK_STATUS_SUCCEEDED:
            state.output.CopyFrom(task.result)
        elif task.HasField("error"):
            state.error.CopyFrom(task.error)

    def _end_workflow(
        self, wf: orchestrator_pb2.Workflow, status: orchestrator_pb2.WorkflowStatus.ValueType
    ) -> None:
        wf.status = status
        wf.finished_at.CopyFrom(_now())

    async def _step_changed(self, tasks: list[common_pb2.Task]) -> None:
        """Wait until one of the tasks has changed (or the workflow was cancelled)."""
        waits = [asyncio.ensure_future(self._next_event(t)) for t in tasks]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    async def _next_event(self, task: common_pb2.Task) -> None:
        journal = self._journals[task.id]
        async with journal.changed:
            seen = len(journal.events)
            if task.status not in TERMINAL:
                await journal.changed.wait_for(lambda: len(journal.events) > seen)

    async def _end_workflow_journal(self, wf: orchestrator_pb2.Workflow) -> None:
        journal = self._workflow_journals[wf.id]
        await journal.append(orchestrator_pb2.WorkflowEvent(workflow_id=wf.id, status=wf.status))

    def _workflow(self, workflow_id: str, tenant: str = "") -> orchestrator_pb2.Workflow:
        wf = self.workflows.get(workflow_id)
        if wf is None or (tenant and wf.spec.tenant != tenant):
            raise rich_error(
                code_pb2.NOT_FOUND, "WORKFLOW_NOT_FOUND", f"workflow {workflow_id} does not exist"
            )
        return wf

    @_answers_aborts
    async def GetWorkflow(
        self, request: orchestrator_pb2.GetWorkflowRequest, context: Context
    ) -> orchestrator_pb2.GetWorkflowResponse:
        return orchestrator_pb2.GetWorkflowResponse(
            workflow=self._workflow(request.id, request.tenant)
        )

    @_answers_aborts
    async def CancelWorkflow(
        self, request: orchestrator_pb2.CancelWorkflowRequest, context: Context
    ) -> orchestrator_pb2.CancelWorkflowResponse:
        wf = self._workflow(request.id, request.tenant)
        if wf.status == orchestrator_pb2.WORKFLOW_STATUS_RUNNING:
            self._end_workflow(wf, orchestrator_pb2.WORKFLOW_STATUS_CANCELLED)
            for state in wf.steps:
                for task_id in state.task_ids:
                    if self.tasks[task_id].status not in TERMINAL:
                        await self._cancel(self.tasks[task_id], request.reason)
                if state.status == common_pb2.TASK_STATUS_RUNNING:
                    self._finish_step(state, self.tasks[state.task_ids[-1]])
        return orchestrator_pb2.CancelWorkflowResponse(workflow=wf)

    @_streams_aborts
    async def WatchWorkflow(
        self, request: orchestrator_pb2.WatchWorkflowRequest, context: Context
    ) -> AsyncIterator[orchestrator_pb2.WatchWorkflowResponse]:
        wf = self._workflow(request.id, request.tenant)
        ev = orchestrator_pb2.WorkflowEvent
        running = orchestrator_pb2.WORKFLOW_STATUS_RUNNING
        was_running = wf.status == running
        yield orchestrator_pb2.WatchWorkflowResponse(event=ev(workflow_id=wf.id, status=wf.status))
        if was_running:  # what its steps did so far, then what they do; a finished one: done
            journal = self._workflow_journals[wf.id]
            # A step event's seq is its place in the journal (from 1); from_seq resumes
            # after it, and a seq the journal never gave starts over, as the real one does.
            start = request.from_seq if request.HasField("from_seq") else 0
            seq = start = start if start <= len(journal.events) else 0
            async for event in journal.follow(start, lambda: wf.status != running):
                seq += 1
                if event.step_id:
                    event = ev(
                        workflow_id=wf.id,
                        step_id=event.step_id,
                        task_event=event.task_event,
                        seq=seq,
                    )
                yield orchestrator_pb2.WatchWorkflowResponse(event=event)
        done = ev(workflow_id=wf.id, status=wf.status, done=True, workflow=wf)
        yield orchestrator_pb2.WatchWorkflowResponse(event=done)

    @_answers_aborts
    async def ListWorkflows(
        self, request: orchestrator_pb2.ListWorkflowsRequest, context: Context
    ) -> orchestrator_pb2.ListWorkflowsResponse:
        workflows = [
            w
            for w in reversed(self.workflows.values())  # newest first
            if (not request.tenant or w.spec.tenant == request.tenant)
            and (not request.status or w.status == request.status)
            and (not request.name or w.spec.name == request.name)
        ]
        page, token = _page(workflows, request.page_token, request.page_size)
        return orchestrator_pb2.ListWorkflowsResponse(workflows=page, next_page_token=token)

    # API keys.

    def create_key(
        self,
        tenant: str,
        role: orchestrator_pb2.APIKeyRole.ValueType = orchestrator_pb2.API_KEY_ROLE_TENANT,
    ) -> tuple[orchestrator_pb2.APIKey, str]:
        """A new key and its secret."""
        secret = "tlk_" + uuid.uuid4().hex
        key = orchestrator_pb2.APIKey(
            id=uuid.uuid4().hex, tenant=tenant, role=role, prefix=secret[:10], created_at=_now()
        )
        self.keys[secret] = key
        return key, secret

    async def CreateAPIKey(
        self, request: orchestrator_pb2.CreateAPIKeyRequest, context: Context
    ) -> orchestrator_pb2.CreateAPIKeyResponse:
        key, secret = self.create_key(
            request.tenant, request.role or orchestrator_pb2.API_KEY_ROLE_TENANT
        )
        key.name = request.name
        return orchestrator_pb2.CreateAPIKeyResponse(api_key=key, secret=secret)

    async def ListAPIKeys(
        self, request: orchestrator_pb2.ListAPIKeysRequest, context: Context
    ) -> orchestrator_pb2.ListAPIKeysResponse:
        keys = [
            k
            for k in self.keys.values()
            if (not request.tenant or k.tenant == request.tenant)
            and (request.include_revoked or not k.HasField("revoked_at"))
        ]
        return orchestrator_pb2.ListAPIKeysResponse(api_keys=keys)  # one page: keys are few

    @_answers_aborts
    async def RevokeAPIKey(
        self, request: orchestrator_pb2.RevokeAPIKeyRequest, context: Context
    ) -> orchestrator_pb2.RevokeAPIKeyResponse:
        for key in self.keys.values():
            if key.id == request.id:
                if not key.HasField("revoked_at"):
                    key.revoked_at.CopyFrom(_now())
                return orchestrator_pb2.RevokeAPIKeyResponse(api_key=key)
        raise rich_error(
            code_pb2.NOT_FOUND, "API_KEY_NOT_FOUND", f"no API key has id {request.id!r}"
        )

    @_answers_aborts
    async def VerifyAPIKey(
        self, request: orchestrator_pb2.VerifyAPIKeyRequest, context: Context
    ) -> orchestrator_pb2.VerifyAPIKeyResponse:
        key = self.keys.get(request.secret)
        if key is None or key.HasField("revoked_at"):
            raise rich_error(
                code_pb2.NOT_FOUND, "API_KEY_NOT_FOUND", "no live API key has this secret"
            )
        return orchestrator_pb2.VerifyAPIKeyResponse(api_key=key)


def _page(items: list[T], page_token: str, page_size: int) -> tuple[list[T], str]:
    """One page of items and the token of the next (its offset; empty on the last)."""
    if page_token and not page_token.isdigit():
        raise rich_error(
            code_pb2.INVALID_ARGUMENT,
            "INVALID_ARGUMENT",
            "page_token is not one this orchestrator issued",
            fields={"page_token": "not issued here"},
        )
    start, size = int(page_token or 0), page_size or 100
    return items[start : start + size], str(start + size) if start + size < len(items) else ""


def _has_template(value: struct_pb2.Value) -> bool:
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return "{{" in value.string_value
    if kind == "list_value":
        return any(_has_template(v) for v in value.list_value.values)
    if kind == "struct_value":
        return any(_has_template(v) for v in value.struct_value.fields.values())
    return False


def _invalid(field_name: str, reason: str, message: str) -> Abort:
    return rich_error(
        code_pb2.INVALID_ARGUMENT, reason, message, fields={f"workflow.{field_name}": message}
    )


def _validate(
    spec: orchestrator_pb2.WorkflowSpec,
) -> tuple[orchestrator_pb2.WorkflowMode.ValueType, dict[str, set[str]]]:
    """The workflow's mode and each step's upstream steps; Abort when the spec is invalid."""
    mode = spec.mode
    if mode == orchestrator_pb2.WORKFLOW_MODE_UNSPECIFIED:
        dag = any(s.depends_on for s in spec.steps)
        mode = (
            orchestrator_pb2.WORKFLOW_MODE_DAG if dag else orchestrator_pb2.WORKFLOW_MODE_SEQUENTIAL
        )
    ids = [s.id for s in spec.steps]
    upstream: dict[str, set[str]] = {}
    for i, step in enumerate(spec.steps):
        if ids.count(step.id) > 1:
            raise _invalid(f"steps[{i}].id", "INVALID_ARGUMENT", f"step id {step.id!r} is repeated")
        if step.map_over or step.exit_if or _has_template(step.input):
            raise rich_error(
                code_pb2.UNIMPLEMENTED,
                "UNIMPLEMENTED",
                "the fake orchestrator runs no templates, map_over or exit_if",
            )
        if step.depends_on and mode != orchestrator_pb2.WORKFLOW_MODE_DAG:
            raise _invalid(
                f"steps[{i}].depends_on", "INVALID_ARGUMENT", "depends_on needs mode dag"
            )
        for dep in step.depends_on:
            if dep not in ids:
                raise _invalid(f"steps[{i}].depends_on", "UNKNOWN_STEP", f"no step {dep!r}")
        if step.agent not in {a.name for a in AGENTS}:
            raise rich_error(
                code_pb2.NOT_FOUND,
                "AGENT_NOT_FOUND",
                f"no worker has registered agent {step.agent!r}",
                metadata={"field": f"workflow.steps[{i}].agent"},
            )
        if mode == orchestrator_pb2.WORKFLOW_MODE_SEQUENTIAL:
            upstream[step.id] = {ids[i - 1]} if i else set()
        else:
            upstream[step.id] = set(step.depends_on)
    _reject_cycles(upstream)
    return mode, upstream


def _reject_cycles(upstream: dict[str, set[str]]) -> None:
    done: set[str] = set()

    def visit(step: str, path: list[str]) -> None:
        if step in path:
            cycle = " -> ".join([*path[path.index(step) :], step])
            raise _invalid("steps", "WORKFLOW_CYCLE", f"the steps form a cycle: {cycle}")
        if step not in done:
            for dep in sorted(upstream[step]):
                visit(dep, [*path, step])
            done.add(step)

    for step in upstream:
        visit(step, [])


def _workflow_output(
    wf: orchestrator_pb2.Workflow, upstream: dict[str, set[str]]
) -> struct_pb2.Value:
    """SEQUENTIAL: the last step's output; PARALLEL and DAG: {sink step: output}."""
    outputs = {s.step_id: s.output for s in wf.steps}
    if wf.spec.mode == orchestrator_pb2.WORKFLOW_MODE_SEQUENTIAL:
        return outputs[wf.steps[-1].step_id]
    needed = set().union(*upstream.values())
    out = struct_pb2.Value()
    out.struct_value.update({})
    for step_id, output in outputs.items():
        if step_id not in needed:
            out.struct_value.fields[step_id].CopyFrom(output)
    return out


@contextlib.contextmanager
def serve_fake_orchestrator(
    agent_limits: dict[str, int] | None = None,
) -> Iterator[tuple[FakeOrchestrator, str]]:
    """Yield the fake and its `127.0.0.1:PORT` address while its server runs."""
    fake = FakeOrchestrator(agent_limits)
    runner = LoopThread()

    async def start() -> tuple[grpc.aio.Server, int]:
        server = grpc.aio.server()
        orchestrator_pb2_grpc.add_OrchestratorServiceServicer_to_server(fake, server)
        health_servicer = health.aio.HealthServicer()
        # As the real one (a leader): overall and OrchestratorService, which the gateway's
        # channel health-checks (taskloom.sdk.channel).
        for service in ("", ORCHESTRATOR_SERVICE):
            await health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
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


def _label_traceparent(labels: Any, context: Context) -> None:
    """As the orchestrator does: the call's `traceparent` metadata becomes the task's label
    when the spec has none."""
    if "traceparent" in labels:
        return
    for key, value in context.invocation_metadata() or ():
        if key == "traceparent":
            labels["traceparent"] = str(value)
