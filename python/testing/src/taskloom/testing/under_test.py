"""The orchestrator a contract test runs against: the fake (in process) or the real binary
(with a temporary store and the echo worker), behind one small interface."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc

from taskloom.testing.agents import WAIT
from taskloom.testing.fake_orchestrator import FakeOrchestrator, serve_fake_orchestrator
from taskloom.testing.real_orchestrator import serve_real_orchestrator
from taskloom.v1 import common_pb2, orchestrator_pb2, orchestrator_pb2_grpc

KINDS = ("fake", "real")
# The real orchestrator's queue is kept small, and `wait` runs one task at a time, so that a
# test can fill the queue; tests cancel what they leave running.
REAL_FLAGS = ("--max-queue", "4", "--agent-limit", f"{WAIT.name}=1")


@dataclass
class OrchestratorUnderTest:
    kind: str  # "fake" or "real"
    addr: str
    fake: FakeOrchestrator | None = None

    @contextlib.contextmanager
    def full_queue(self) -> Iterator[None]:
        """While this lasts, SubmitTask answers RESOURCE_EXHAUSTED (QUEUE_FULL)."""
        if self.fake is not None:
            self.fake.queue_full = True
            try:
                yield
            finally:
                self.fake.queue_full = False
            return
        with grpc.insecure_channel(self.addr) as channel:
            stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
            filler: list[str] = []
            try:
                for _ in range(100):  # far more than the queue holds
                    spec = common_pb2.TaskSpec(agent=WAIT.name, tenant="queue-filler")
                    try:
                        resp = stub.SubmitTask(orchestrator_pb2.SubmitTaskRequest(task=spec))
                    except grpc.RpcError as err:
                        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err
                        break
                    filler.append(resp.task.id)
                else:
                    raise AssertionError("the queue never filled")
                yield
            finally:
                for task_id in filler:
                    with contextlib.suppress(grpc.RpcError):
                        stub.CancelTask(orchestrator_pb2.CancelTaskRequest(id=task_id))


@contextlib.contextmanager
def serve_orchestrator(kind: str, bin_dir: Path, data_dir: Path) -> Iterator[OrchestratorUnderTest]:
    """Run the orchestrator of that kind ("fake" or "real") while the context lasts."""
    if kind == "fake":
        with serve_fake_orchestrator() as (fake, addr):
            yield OrchestratorUnderTest("fake", addr, fake)
    else:
        binary = bin_dir / "taskloom-orchestrator"
        with serve_real_orchestrator(binary, data_dir, *REAL_FLAGS) as addr:
            yield OrchestratorUnderTest("real", addr)
