"""The `agent` and `handoff` tools: another agent runs as a child task through the
orchestrator's client API (`SubmitTask` + `WatchTask`, on the address the worker dials
for its session), so it is scheduled, limited, durable and visible like any task.

The child runs under the parent's tenant, with labels naming its parent, its depth and
the chain of agents above it; a call past the depth limit or back into an agent of the
chain (a cycle) is refused as a tool error. Its idempotency key is derived from the
parent task and the tool call, so a retried parent finds its child instead of starting
another. While the parent waits it lends its worker credit back (see
`ToolContext.suspend_credit`), so one worker of concurrency 1 can run a chain.

`agent` returns the child's output to the model. `handoff` passes the conversation so far
(user and assistant text) to the other agent, and the child's result becomes the task's
result: the loop ends on a `Handoff`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import grpc
import structlog

from taskloom.agents import values
from taskloom.agents.catalog.spec import AgentSpec, AgentToolOptions, ToolDecl
from taskloom.agents.providers.base import Message
from taskloom.agents.tools.base import (
    FunctionTool,
    Handoff,
    ToolContext,
    ToolError,
    declared_policy,
)
from taskloom.sdk import tracing
from taskloom.v1 import common_pb2, orchestrator_pb2, orchestrator_pb2_grpc

log = structlog.get_logger(__name__)

PARENT_LABEL = "taskloom.parent_task_id"
DEPTH_LABEL = "taskloom.agent_depth"
CHAIN_LABEL = "taskloom.agent_chain"
PROPAGATED_LABELS = ("traceparent",)
SUBMIT_TIMEOUT_S = 10.0
REWATCH_DELAY_S = 0.5
_TERMINAL = frozenset(
    {
        common_pb2.TASK_STATUS_SUCCEEDED,
        common_pb2.TASK_STATUS_FAILED,
        common_pb2.TASK_STATUS_CANCELLED,
        common_pb2.TASK_STATUS_TIMED_OUT,
    }
)


class ChildTasks:
    """Runs child tasks through the orchestrator and waits for their end."""

    def __init__(self, orchestrator_addr: str, max_depth: int = 5) -> None:
        self._channel = tracing.aio_channel(orchestrator_addr)
        self._stub = orchestrator_pb2_grpc.OrchestratorServiceStub(self._channel)
        self.max_depth = max_depth

    async def aclose(self) -> None:
        await self._channel.close()

    def child_spec(
        self, context: ToolContext, agent: str, task_input: Any, purpose: str
    ) -> common_pb2.TaskSpec:
        """The child's TaskSpec; ToolError when the depth limit or a cycle forbids it."""
        parent = context.task
        chain = [a for a in parent.labels.get(CHAIN_LABEL, "").split(",") if a] + [parent.agent]
        try:
            depth = int(parent.labels.get(DEPTH_LABEL, "0")) + 1
        except ValueError:
            depth = len(chain)
        shown = " -> ".join([*chain, agent])
        if agent in chain:
            raise ToolError(f"calling agent {agent!r} would form a cycle ({shown}); refused")
        if depth > self.max_depth:
            raise ToolError(f"the agent depth limit of {self.max_depth} is reached ({shown})")
        labels = {k: parent.labels[k] for k in PROPAGATED_LABELS if k in parent.labels}
        labels.update(
            {PARENT_LABEL: parent.task_id, DEPTH_LABEL: str(depth), CHAIN_LABEL: ",".join(chain)}
        )
        spec = common_pb2.TaskSpec(
            agent=agent,
            tenant=parent.tenant,
            labels=labels,
            idempotency_key=f"taskloom.{purpose}/{parent.task_id}/{context.tool_call_id}",
        )
        try:
            values.fill(spec.input, task_input)
        except TypeError as err:
            raise ToolError(f"input: {err}") from None
        return spec

    async def run(
        self, spec: common_pb2.TaskSpec, context: ToolContext, timeout_s: float
    ) -> common_pb2.Task:
        """Submit the child and wait for its end, the parent's credit lent out meanwhile."""
        try:
            submitted = await self._stub.SubmitTask(
                orchestrator_pb2.SubmitTaskRequest(task=spec), timeout=SUBMIT_TIMEOUT_S
            )
        except grpc.aio.AioRpcError as err:
            raise ToolError(f"could not start agent {spec.agent!r}: {err.details()}") from None
        task = submitted.task
        if task.status in _TERMINAL:
            return task
        suspend = context.suspend_credit() if context.suspend_credit else _nothing()
        try:
            async with suspend, asyncio.timeout(timeout_s):
                return await self._wait(task.id)
        except TimeoutError:
            await self._cancel(task.id, "the parent stopped waiting")
            raise ToolError(
                f"agent {spec.agent!r} (task {task.id}) did not finish within {timeout_s:g} s"
            ) from None
        except asyncio.CancelledError:
            await asyncio.shield(self._cancel(task.id, "the parent task was stopped"))
            raise

    async def _wait(self, task_id: str) -> common_pb2.Task:
        while True:
            try:
                async for response in self._stub.WatchTask(
                    orchestrator_pb2.WatchTaskRequest(id=task_id)
                ):
                    if response.event.type == orchestrator_pb2.TASK_EVENT_TYPE_DONE:
                        return response.event.task
            except grpc.aio.AioRpcError as err:
                if err.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL):
                    raise ToolError(f"lost track of task {task_id}: {err.details()}") from None
                log.warning("watching a child task failed, watching again", error=err.details())
            await asyncio.sleep(REWATCH_DELAY_S)

    async def _cancel(self, task_id: str, reason: str) -> None:
        with contextlib.suppress(grpc.aio.AioRpcError, TimeoutError):
            await self._stub.CancelTask(
                orchestrator_pb2.CancelTaskRequest(id=task_id, reason=reason),
                timeout=SUBMIT_TIMEOUT_S,
            )


@contextlib.asynccontextmanager
async def _nothing() -> AsyncIterator[None]:
    yield


def _output(task: common_pb2.Task, agent: str) -> dict[str, Any]:
    """The child's output, or ToolError naming how it ended."""
    if task.status != common_pb2.TASK_STATUS_SUCCEEDED:
        status = common_pb2.TaskStatus.Name(task.status).removeprefix("TASK_STATUS_").lower()
        raise ToolError(
            f"agent {agent!r} (task {task.id}) ended {status}: {task.error.message or 'no detail'}"
        )
    output = values.to_python(task.result) if task.HasField("result") else {}
    return output if isinstance(output, dict) else {"value": output}


def _target_schema(options: AgentToolOptions, extra: Mapping[str, Any]) -> dict[str, Any]:
    agent: dict[str, Any] = {"type": "string", "description": "the agent to call"}
    if options.agents:
        agent["enum"] = list(options.agents)
    return {
        "type": "object",
        "properties": {"agent": agent, **extra},
        "required": ["agent", *(k for k in extra if k == "input")],
        "additionalProperties": False,
    }


def conversation_for_handoff(messages: Sequence[Message], note: str) -> list[dict[str, str]]:
    """The user and assistant text of the conversation, for the agent taking over."""
    out = [
        {"role": m["role"], "content": m["content"]}
        for m in messages
        if m["role"] in ("user", "assistant") and m["content"]
    ]
    if note:
        out.append({"role": "user", "content": note})
    elif not out or out[-1]["role"] != "user":
        last_user = next((m for m in reversed(out) if m["role"] == "user"), None)
        if last_user is not None:
            out.append(dict(last_user))
    return out


def agent_tool(children: ChildTasks) -> Any:
    def factory(decl: ToolDecl, spec: AgentSpec) -> FunctionTool:
        options: AgentToolOptions = decl.builtin_options()

        async def run(arguments: dict[str, Any], context: ToolContext) -> dict[str, Any]:
            agent = arguments["agent"]
            child = children.child_spec(context, agent, arguments["input"], "agent")
            task = await children.run(child, context, options.wait_timeout_s)
            return {"agent": agent, "task_id": task.id, "output": _output(task, agent)}

        input_schema = {"input": {"description": "the task input: a prompt string or an object"}}
        return FunctionTool(
            name=decl.name,
            description=decl.description or "Ask another agent to do a task and return its result.",
            parameters=_target_schema(options, input_schema),
            run=run,
            policy=declared_policy(decl, options.wait_timeout_s + 5),
        )

    return factory


def handoff_tool(children: ChildTasks) -> Any:
    def factory(decl: ToolDecl, spec: AgentSpec) -> FunctionTool:
        options: AgentToolOptions = decl.builtin_options()

        async def run(arguments: dict[str, Any], context: ToolContext) -> Handoff:
            agent = arguments["agent"]
            messages = conversation_for_handoff(context.messages, arguments.get("message", ""))
            child = children.child_spec(context, agent, {"messages": messages}, "handoff")
            task = await children.run(child, context, options.wait_timeout_s)
            output = _output(task, agent)
            output["handoff"] = {"from": context.task.agent, "to": agent, "task_id": task.id}
            return Handoff(
                output,
                prompt_tokens=task.usage.prompt_tokens,
                completion_tokens=task.usage.completion_tokens,
            )

        note = {"message": {"type": "string", "description": "what the other agent should know"}}
        return FunctionTool(
            name=decl.name,
            description=decl.description
            or "Hand this conversation to another agent, which answers the task instead.",
            parameters=_target_schema(options, note),
            run=run,
            policy=declared_policy(decl, options.wait_timeout_s + 5),
        )

    return factory
