"""Scenario `crash`: what a crash costs. 100 workflows of 3 sequential steps run at
once on the whole stack (one Python worker with credits for all of them, the shipped
`assistant` agent whose simulated call takes 4 s, default durable store); once every
workflow has started step 2, and a second later (the middle of step 2 for most of
them), `kill -9` hits the worker (a new one is started) and, in a second run, the
orchestrator (restarted on the same data directory).

- `workflows_lost_*`: workflows that did not succeed within the time allowed.
- `steps_rerun_*`: step attempts beyond the first, over every step task.
- `recovery_seconds_orchestrator_kill`: from the restarted orchestrator's start until it
  answers /readyz and a worker has its session again (the stack runs work again).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

import grpc
import httpx
import progress
import stack
from google.protobuf import json_format
from run import Result

from taskloom.v1 import common_pb2, orchestrator_pb2, orchestrator_pb2_grpc

WORKFLOWS = 100
STEP_MS = 4_000
FINISH_TIMEOUT_S = 180.0
PROMPT = {"prompt": "One step of a workflow that outlives a crash."}

Orchestrator = orchestrator_pb2_grpc.OrchestratorServiceStub
RUNNING = common_pb2.TASK_STATUS_RUNNING
STEP_SUCCEEDED = common_pb2.TASK_STATUS_SUCCEEDED
SUCCEEDED = orchestrator_pb2.WORKFLOW_STATUS_SUCCEEDED


def run(quick: bool = False) -> list[Result]:
    with progress.phases("crash", 2) as phase:
        phase("kill -9 the worker in step 2")
        worker = _crash("worker")
        phase("kill -9 the orchestrator in step 2")
        orch = _crash("orchestrator")
    return [
        Result(
            "workflows_lost_worker_kill", worker["lost"], "workflows", "lower", goal="value == 0"
        ),
        Result("steps_rerun_worker_kill", worker["rerun"], "steps", "lower"),
        Result(
            "workflows_lost_orchestrator_kill",
            orch["lost"],
            "workflows",
            "lower",
            goal="value == 0",
        ),
        Result("steps_rerun_orchestrator_kill", orch["rerun"], "steps", "lower"),
        Result("recovery_seconds_orchestrator_kill", orch["recovery_s"], "s", "lower"),
    ]


def _crash(victim: str) -> dict[str, float]:
    worker_env = {
        "TASKLOOM_SIM_LATENCY_MS": str(STEP_MS),
        "TASKLOOM_SIM_TOKENS_PER_SECOND": "0",
        "TASKLOOM_CONCURRENCY": str(2 * WORKFLOWS),
    }
    with stack.running(workers=1, worker_env=worker_env) as s, stack.orchestrator(s) as orch:
        ids = [_submit(orch) for _ in range(WORKFLOWS)]
        _await_step_started(orch, ids, "step2")
        time.sleep(STEP_MS / 4000)  # the last one's step 2 a quarter in, the first ones further
        proc = s.service(victim).process
        assert proc is not None
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        restarted = time.monotonic()
        s.restart(victim)
        recovery = 0.0
        if victim == "orchestrator":

            def worker_back() -> bool:
                return stack.orchestrator_metric(s, "taskloom_orchestrator_workers_connected") >= 1

            _await(worker_back)
            recovery = time.monotonic() - restarted
        finals = _await_finished(orch, ids)
        lost = sum(1 for wf in finals if wf.status != SUCCEEDED)
        rerun = sum(
            max(0, _task(orch, tid).attempts - 1)
            for wf in finals
            for st in wf.steps
            for tid in st.task_ids
        )
    return {"lost": lost, "rerun": rerun, "recovery_s": round(recovery, 2)}


def _submit(orch: Orchestrator) -> str:
    steps = []
    for i in (1, 2, 3):
        step = orchestrator_pb2.Step(id=f"step{i}", agent="assistant")
        json_format.ParseDict(PROMPT, step.input)
        steps.append(step)
    spec = orchestrator_pb2.WorkflowSpec(
        mode=orchestrator_pb2.WORKFLOW_MODE_SEQUENTIAL, steps=steps
    )
    resp = orch.SubmitWorkflow(orchestrator_pb2.SubmitWorkflowRequest(workflow=spec), timeout=30)
    return str(resp.workflow.id)


def _get(orch: Orchestrator, wf_id: str) -> orchestrator_pb2.Workflow:
    return orch.GetWorkflow(orchestrator_pb2.GetWorkflowRequest(id=wf_id), timeout=30).workflow


def _task(orch: Orchestrator, task_id: str) -> common_pb2.Task:
    return orch.GetTask(orchestrator_pb2.GetTaskRequest(id=task_id), timeout=30).task


def _await_step_started(orch: Orchestrator, ids: list[str], step_id: str) -> None:
    """Waits until every workflow has started step_id (runs it, or has finished it if
    the steps' starts spread over more than a step's time). Checked one
    workflow at a time, not all at one instant: on a loaded machine a sweep of 100
    GetWorkflow calls may outlast the spread of their steps."""
    pending = list(ids)

    def started() -> bool:
        while pending:
            steps = {st.step_id: st for st in _get(orch, pending[-1]).steps}
            if steps[step_id].status not in (RUNNING, STEP_SUCCEEDED):
                return False
            pending.pop()
        return True

    _await(started, timeout=120)


def _await_finished(orch: Orchestrator, ids: list[str]) -> list[orchestrator_pb2.Workflow]:
    """Every workflow once finished, or as it stands when the time is up."""
    deadline = time.monotonic() + FINISH_TIMEOUT_S
    pending = set(ids)
    with progress.bar(len(ids), "workflows finished", unit="workflow") as bar:
        while pending and time.monotonic() < deadline:
            for wf_id in list(pending):
                if _get_or_none(orch, wf_id) is not None:
                    pending.discard(wf_id)
                    bar.update(1)
            time.sleep(0.2)
    return [_get(orch, wf_id) for wf_id in ids]


def _get_or_none(orch: Orchestrator, wf_id: str) -> orchestrator_pb2.Workflow | None:
    """The workflow if it has finished (None while it runs or cannot be read yet)."""
    try:
        wf = _get(orch, wf_id)
    except grpc.RpcError:  # the orchestrator may still be starting
        return None
    running = (
        orchestrator_pb2.WORKFLOW_STATUS_RUNNING,
        orchestrator_pb2.WORKFLOW_STATUS_UNSPECIFIED,
    )
    return None if wf.status in running else wf


def _await(check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (grpc.RpcError, httpx.HTTPError):  # a service still starting
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{check.__name__} was not so within {timeout} s")
