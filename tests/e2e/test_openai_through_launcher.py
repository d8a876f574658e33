"""A real model with `make up`: the launcher passes the user's settings and config file to the
services, and an agent of the user's directory answers through an OpenAI-compatible server
(a small one written here: real HTTP, streamed server-sent events) via REST."""

from __future__ import annotations

import json
import os
import signal
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

from taskloom.testing.launcher import run_launcher
from taskloom.testing.servers import serve_asgi

BIN = Path(__file__).resolve().parents[2] / "bin"
API_KEY = "sk-e2e-not-to-be-printed"
ANSWER = ["Taskloom ", "runs ", "agents ", "at scale."]
WAIT_S = 120.0  # generous: the whole stack starts on a loaded machine

POET = """\
name: poet
description: Writes on a real (here, a fake OpenAI-compatible) model.
provider: openai
model: fake-gpt-1
cache: false
"""


class FakeOpenAI:
    """`POST /v1/chat/completions`, streamed as OpenAI does; remembers what it was sent."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.app = Starlette(
            routes=[Route("/v1/chat/completions", self.complete, methods=["POST"])]
        )

    async def complete(self, request: Request) -> StreamingResponse:
        body = await request.json()
        self.requests.append((request.headers.get("authorization", ""), body))

        async def events() -> AsyncIterator[str]:
            for piece in ANSWER:
                delta = {"choices": [{"index": 0, "delta": {"content": piece}}]}
                yield f"data: {json.dumps(delta)}\n\n"
            usage = {"choices": [], "usage": {"prompt_tokens": 21, "completion_tokens": 4}}
            yield f"data: {json.dumps(usage)}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")


@pytest.fixture
def openai_server() -> Iterator[tuple[FakeOpenAI, str]]:
    fake = FakeOpenAI()
    with serve_asgi(fake.app) as url:
        yield fake, url


def _finished(gateway: str, task_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_S
    while True:
        task: dict[str, Any] = httpx.get(f"{gateway}/v1/tasks/{task_id}").json()
        if task["status"] in {"succeeded", "failed", "cancelled", "timed_out"}:
            return task
        assert time.monotonic() < deadline, f"the task did not finish: {task}"
        time.sleep(0.1)


def _starting_settings(log: Path, event: str) -> dict[str, Any]:
    for line in log.read_text().splitlines():
        record = json.loads(line)
        if record.get("event") == event:
            settings: dict[str, Any] = record["settings"]
            return settings
    raise AssertionError(f"no {event!r} line in {log}")


@pytest.mark.usefixtures("local_processes")
def test_an_openai_agent_answers_through_the_launcher_and_rest(
    tmp_path: Path, openai_server: tuple[FakeOpenAI, str]
) -> None:
    fake, url = openai_server
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "poet.yaml").write_text(POET)
    config = tmp_path / "taskloom.yaml"
    config.write_text("worker:\n  concurrency: 3\ngateway:\n  grpc_timeout_seconds: 7\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKLOOM_")}
    env |= {
        "TASKLOOM_AGENTS_DIR": str(agents),
        "TASKLOOM_OPENAI_BASE_URL": f"{url}/v1",
        "TASKLOOM_OPENAI_API_KEY": API_KEY,
    }
    state = tmp_path / "state"
    with run_launcher(BIN, state, "--config", str(config), env=env) as (launcher, printed):
        assert f"TASKLOOM_AGENTS_DIR={agents}" in printed
        assert "TASKLOOM_OPENAI_API_KEY=***" in printed
        assert f"TASKLOOM_CONFIG={config}" in printed
        gateway = json.loads((state / "stack.json").read_text())["gateway"]["http"]

        agent_names = [a["name"] for a in httpx.get(f"{gateway}/v1/agents").json()["agents"]]
        assert "poet" in agent_names
        submitted = httpx.post(
            f"{gateway}/v1/tasks", json={"agent": "poet", "input": "What does Taskloom do?"}
        )
        assert submitted.status_code == 202, submitted.text
        task = _finished(gateway, submitted.json()["id"])
        assert task["status"] == "succeeded", task
        assert task["result"]["text"] == "".join(ANSWER)
        assert task["result"]["provider"] == "openai"
        assert task["result"]["simulated"] is False
        assert task["usage"]["prompt_tokens"] == 21

        assert len(fake.requests) == 1
        authorization, body = fake.requests[0]
        assert authorization == f"Bearer {API_KEY}"
        assert body["model"] == "fake-gpt-1"
        assert body["stream"] is True
        assert body["messages"][-1] == {"role": "user", "content": "What does Taskloom do?"}

        # Each service read its own section of the one file.
        logs = state / "logs"
        worker = _starting_settings(logs / "worker.log", "agent worker starting")
        assert worker["concurrency"] == 3
        assert worker["config_file"] == str(config)
        assert worker["openai_api_key"] == "***"
        assert _starting_settings(logs / "gateway.log", "starting")["grpc_timeout_seconds"] == 7

        launcher.send_signal(signal.SIGINT)
        rest, _ = launcher.communicate(timeout=WAIT_S)
        assert launcher.returncode == 0, rest
    everything = printed + "".join(p.read_text() for p in (state / "logs").iterdir())
    assert API_KEY not in everything
