"""`python -m taskloom.agents` as a process: SIGTERM drains the running task and exits 0."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import pytest
from google.protobuf import json_format

from taskloom.v1 import common_pb2, worker_hub_pb2

pytestmark = pytest.mark.asyncio

EXIT_WAIT_S = 20.0  # generous: a hang fails the test instead of blocking the suite


async def test_sigterm_drains_the_running_task_and_exits_zero(hub_server) -> None:
    env = {
        **os.environ,
        "TASKLOOM_ORCHESTRATOR_ADDR": hub_server.addr,
        "TASKLOOM_HTTP_ADDR": "127.0.0.1:0",
        "TASKLOOM_WORKER_ID": "signal-test",
        "TASKLOOM_SIM_LATENCY_MS": "0",
        "TASKLOOM_SIM_TOKENS_PER_SECOND": "20",  # a couple of seconds per answer
        "TASKLOOM_GRPC_ADDR": "127.0.0.1:1",  # a stack-wide variable the worker ignores
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "taskloom.agents",
        env=env,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        session = await hub_server.hub.next_session()
        assert (await session.recv("register")).worker_id == "signal-test"
        await session.recv("credit")
        task = common_pb2.Task(id="sig-1", agent="assistant", input={"string_value": "hi"})
        session.send(assignment=worker_hub_pb2.Assignment(task=task, lease_id="lease-sig-1"))
        await session.recv("chunk")  # running

        proc.send_signal(signal.SIGTERM)
        assert await session.recv("drain") is not None
        result = await session.recv("result")
        assert result.lease_id == "lease-sig-1"
        assert not result.HasField("error")
        assert json_format.MessageToDict(result.output)["text"].startswith("[simulated]")
        assert await asyncio.wait_for(proc.wait(), EXIT_WAIT_S) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
