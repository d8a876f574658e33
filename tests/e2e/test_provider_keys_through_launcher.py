"""An endpoint's key reaches the worker under `make up`: the launcher passes the variable an
endpoint's `api_key_env` names (here ANTHROPIC_API_KEY, not a `TASKLOOM_*` one) to the
workers, printed masked, and an agent on that endpoint answers through a small local server
speaking Anthropic's Messages API (real HTTP, streamed events) via REST."""

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
API_KEY = "sk-ant-e2e-not-to-be-printed"
ANSWER = ["Keys ", "reach ", "the worker."]
WAIT_S = 120.0  # generous: the whole stack starts on a loaded machine

CRITIC = """\
name: critic
description: Answers on an Anthropic endpoint of the configuration file.
provider: claude
model: fake-claude-1
cache: false
"""


class FakeAnthropic:
    """`POST /v1/messages`, streamed as Anthropic does; remembers the keys it was sent."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.app = Starlette(routes=[Route("/v1/messages", self.messages, methods=["POST"])])

    async def messages(self, request: Request) -> StreamingResponse:
        await request.json()
        self.keys.append(request.headers.get("x-api-key", ""))

        def event(kind: str, data: dict[str, Any]) -> str:
            return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n"

        async def events() -> AsyncIterator[str]:
            usage = {"input_tokens": 17, "output_tokens": 1}
            yield event("message_start", {"message": {"id": "msg_1", "usage": usage}})
            block = {"type": "text", "text": ""}
            yield event("content_block_start", {"index": 0, "content_block": block})
            for piece in ANSWER:
                delta = {"type": "text_delta", "text": piece}
                yield event("content_block_delta", {"index": 0, "delta": delta})
            yield event("content_block_stop", {"index": 0})
            end = {"delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 3}}
            yield event("message_delta", end)
            yield event("message_stop", {})

        return StreamingResponse(events(), media_type="text/event-stream")


@pytest.fixture
def anthropic_server() -> Iterator[tuple[FakeAnthropic, str]]:
    fake = FakeAnthropic()
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


@pytest.mark.usefixtures("local_processes")
def test_an_endpoint_key_in_a_vendor_variable_reaches_the_worker(
    tmp_path: Path, anthropic_server: tuple[FakeAnthropic, str]
) -> None:
    fake, url = anthropic_server
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "critic.yaml").write_text(CRITIC)
    config = tmp_path / "taskloom.yaml"
    endpoint = {"kind": "anthropic", "base_url": f"{url}/v1", "api_key_env": "ANTHROPIC_API_KEY"}
    config.write_text(json.dumps({"worker": {"endpoints": {"claude": endpoint}}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKLOOM_")}
    env |= {"TASKLOOM_AGENTS_DIR": str(agents), "ANTHROPIC_API_KEY": API_KEY}
    state = tmp_path / "state"
    with run_launcher(BIN, state, "--config", str(config), env=env) as (launcher, printed):
        assert "Passing the LLM endpoints' keys to the workers:\n  ANTHROPIC_API_KEY=***" in printed
        gateway = json.loads((state / "stack.json").read_text())["gateway"]["http"]

        submitted = httpx.post(
            f"{gateway}/v1/tasks", json={"agent": "critic", "input": "Do keys arrive?"}
        )
        assert submitted.status_code == 202, submitted.text
        task = _finished(gateway, submitted.json()["id"])
        assert task["status"] == "succeeded", task
        assert task["result"]["text"] == "".join(ANSWER)
        assert task["result"]["provider"] == "claude"
        assert fake.keys == [API_KEY]

        launcher.send_signal(signal.SIGINT)
        rest, _ = launcher.communicate(timeout=WAIT_S)
        assert launcher.returncode == 0, rest
    everything = printed + "".join(p.read_text() for p in (state / "logs").iterdir())
    assert API_KEY not in everything
