"""The journal survives a crash: `kill -9` of the worker in the middle of a 5-turn tool loop
on a real stack (orchestrator, gateway, two workers) and a small OpenAI-compatible server
written here that counts its requests. The task completes on the other worker, which
replays the turns and tool results the first one recorded instead of paying for them again.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from taskloom.sdk.localstack import Ports, Stack, StackConfig
from taskloom.testing.servers import serve_asgi

BIN = Path(__file__).resolve().parents[2] / "bin"
WAIT_S = 120.0  # generous: a loaded machine; every wait ends as soon as its condition holds
TURNS = 5  # four turns call the calculator, the fifth answers
CRASH_AT = 3  # the worker dies while the LLM works on this turn

LOOPER = """\
name: looper
provider: openai
model: fake-gpt-1
cache: false
max_iterations: 8
tools: [calculator]
"""


class CountingLLM:
    """`POST /v1/chat/completions`, streamed as OpenAI does. Turn n (the tool results in
    the request, plus one) calls the calculator until turn TURNS answers. The first request
    for turn CRASH_AT is held until `release` is set, so the test can kill its worker."""

    def __init__(self) -> None:
        self.turns: list[int] = []  # the turn of each request, in arrival order
        self.held = threading.Event()
        self.release = threading.Event()
        self.app = Starlette(
            routes=[Route("/v1/chat/completions", self.complete, methods=["POST"])]
        )

    async def complete(self, request: Request) -> StreamingResponse:
        body = await request.json()
        turn = 1 + sum(1 for m in body["messages"] if m["role"] == "tool")
        self.turns.append(turn)
        if turn == CRASH_AT and not self.held.is_set():
            self.held.set()
            await asyncio.to_thread(self.release.wait, WAIT_S)
        return StreamingResponse(self._events(turn), media_type="text/event-stream")

    @staticmethod
    async def _events(turn: int) -> AsyncIterator[str]:
        base = {"id": f"c{turn}", "object": "chat.completion.chunk", "model": "fake-gpt-1"}

        def event(delta: dict[str, Any]) -> str:
            return f"data: {json.dumps({**base, 'choices': [{'index': 0, 'delta': delta}]})}\n\n"

        if turn < TURNS:
            args = json.dumps({"expression": f"{turn} * 10"})
            call = {"index": 0, "id": f"call_{turn}", "type": "function"}
            yield event(
                {"tool_calls": [{**call, "function": {"name": "calculator", "arguments": args}}]}
            )
        else:
            yield event({"content": "All four products are in."})
        usage = {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}
        yield f"data: {json.dumps({**base, 'choices': [], 'usage': usage})}\n\n"
        yield "data: [DONE]\n\n"


@pytest.fixture
def llm() -> Iterator[tuple[CountingLLM, str]]:
    fake = CountingLLM()
    with serve_asgi(fake.app) as url:
        yield fake, url
        fake.release.set()


def _wait(what: str, condition: Any) -> Any:
    deadline = time.monotonic() + WAIT_S
    while not (value := condition()):
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)
    return value


def _metric(base_url: str, name: str) -> float:
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.split()[-1])
    return 0.0


@pytest.mark.usefixtures("local_processes")
def test_kill_9_mid_tool_loop_the_task_completes_elsewhere_without_paying_again(
    tmp_path: Path, llm: tuple[CountingLLM, str]
) -> None:
    fake, url = llm
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "looper.yaml").write_text(LOOPER)
    worker_env = {
        "TASKLOOM_AGENTS_DIR": str(agents),
        "TASKLOOM_OPENAI_BASE_URL": f"{url}/v1",
        "TASKLOOM_OPENAI_API_KEY": "sk-test",
        "TASKLOOM_CACHE_ADDR": "",
        "TASKLOOM_METRICS_ADDR": "",
        "TASKLOOM_CONCURRENCY": "1",
    }
    cfg = StackConfig(
        bin_dir=BIN,
        state_dir=tmp_path / "state",
        ports=Ports.random(),
        workers=2,
        only=("orchestrator", "worker-1", "worker-2", "gateway"),
        worker_env=worker_env,
        env_overrides={
            "worker-1": {"TASKLOOM_WORKER_ID": "worker-1"},
            "worker-2": {"TASKLOOM_WORKER_ID": "worker-2"},
        },
    )
    with Stack(cfg) as stack, httpx.Client(base_url=stack.gateway_url, timeout=10) as client:
        orchestrator = stack.service("orchestrator").base_url
        submitted = client.post("/v1/tasks", json={"agent": "looper", "input": "Multiply."})
        assert submitted.status_code == 202, submitted.text
        task_id = submitted.json()["id"]

        # Turns 1 and 2 ran, with their tool calls; turn 3 is with the LLM. The worker sent
        # their four records without waiting; once the orchestrator holds them, kill -9.
        _wait("the LLM to be asked for turn 3", fake.held.is_set)
        _wait(
            "the orchestrator to record turns 1-2 and their tool results",
            lambda: (
                _metric(orchestrator, "taskloom_orchestrator_journal_records_total")
                >= 2 * (CRASH_AT - 1)
            ),
        )
        first = client.get(f"/v1/tasks/{task_id}").json()
        assert first["status"] == "running" and first["attempts"] == 1, first
        victim = stack.service(first["worker_id"])
        assert victim.process is not None
        os.killpg(victim.process.pid, signal.SIGKILL)
        victim.process.wait(timeout=WAIT_S)
        fake.release.set()

        task = _wait(
            "the task to finish on the other worker",
            lambda: (
                (t := client.get(f"/v1/tasks/{task_id}").json())["status"]
                in {"succeeded", "failed", "cancelled", "timed_out"}
                and t
            ),
        )
        assert task["status"] == "succeeded", task
        assert task["attempts"] == 2 and task["worker_id"] != first["worker_id"], task
        assert task["result"]["text"] == "All four products are in."
        assert task["result"]["iterations"] == TURNS
        assert [c["name"] for c in task["result"]["tool_calls"]] == ["calculator"] * (TURNS - 1)

        # Paid for: turns 1, 2 and 3 (cut short) by the first worker; 3, 4 and 5 by the
        # second, which replayed 1 and 2 and their tool results from the journal.
        assert fake.turns == [1, 2, 3, 3, 4, 5], fake.turns
