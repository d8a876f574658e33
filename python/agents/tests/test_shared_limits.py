"""Two worker processes share one endpoint's limits through a real redis-server: with one
concurrent request allowed, the OpenAI-compatible server never sees two at once, although
each worker runs several tasks at a time."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from taskloom.v1 import common_pb2, worker_hub_pb2

pytestmark = pytest.mark.asyncio

TASKS_PER_WORKER = 4
EXIT_WAIT_S = 30.0
START_WAIT_S = 60.0  # a worker process starts in seconds, more on a loaded machine


async def test_two_workers_share_the_concurrency_limit_through_redis(
    tmp_path: Path, hub_server, fake_openai, redis_url: str
) -> None:
    fake_openai.delay_s = 0.2  # long enough for calls to overlap if nothing stopped them
    (tmp_path / "writer.yaml").write_text(
        "name: writer\nprovider: shared\nmodel: m\ncache: false\n"
    )
    endpoints = {
        "shared": {
            "kind": "openai",
            "base_url": fake_openai.base_url,
            "limits": {"concurrent": 1, "requests_per_second": 50, "max_wait_s": 60},
        }
    }
    env = {
        **os.environ,
        "TASKLOOM_ORCHESTRATOR_ADDR": hub_server.addr,
        "TASKLOOM_HTTP_ADDR": "127.0.0.1:0",
        "TASKLOOM_AGENTS_DIR": str(tmp_path),
        "TASKLOOM_AGENTS_RELOAD": "false",
        "TASKLOOM_ENDPOINTS": json.dumps(endpoints),
        "TASKLOOM_REDIS_URL": redis_url,
    }
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "taskloom.agents",
            env={**env, "TASKLOOM_WORKER_ID": f"w{i}"},
            stderr=asyncio.subprocess.DEVNULL,
        )
        for i in range(2)
    ]
    try:
        sessions = [
            await asyncio.wait_for(hub_server.hub.sessions.get(), START_WAIT_S) for _ in workers
        ]
        for n, session in enumerate(sessions):
            await session.recv("credit")
            for i in range(TASKS_PER_WORKER):
                task = common_pb2.Task(
                    id=f"t-{n}-{i}", agent="writer", input={"string_value": f"hi {n} {i}"}
                )
                lease = f"lease-{n}-{i}"
                session.send(assignment=worker_hub_pb2.Assignment(task=task, lease_id=lease))
        for session in sessions:
            for _ in range(TASKS_PER_WORKER):
                result = await session.recv("result")
                assert not result.HasField("error"), result.error.message
    finally:
        for proc in workers:
            if proc.returncode is None:
                proc.terminate()
        for proc in workers:
            await asyncio.wait_for(proc.wait(), EXIT_WAIT_S)
    assert len(fake_openai.requests) == 2 * TASKS_PER_WORKER
    assert fake_openai.max_in_flight == 1
