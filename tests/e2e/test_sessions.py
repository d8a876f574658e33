"""Sessions end to end on a stack whose worker and gateway share a real redis-server: three
tasks of one session, each sent the earlier turns (the simulated model's prompt grows by
them), read back and forgotten through `/v1/sessions/{id}` (with the SDK), invisible to
another tenant."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from taskloom.sdk.client import TaskloomClient, TaskloomError
from taskloom.sdk.localstack import Ports, Stack, StackConfig
from taskloom.testing.redis_server import redis_server

BIN = Path(__file__).resolve().parents[2] / "bin"


@pytest.fixture(scope="module")
def session_stack(local_processes: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server() as url:
        sessions = {"TASKLOOM_SESSIONS_REDIS_URL": url}
        cfg = StackConfig(
            bin_dir=BIN,
            state_dir=Path(tmp_path_factory.mktemp("session-stack")),
            ports=Ports.random(),
            only=("orchestrator", "worker", "gateway"),
            env_overrides={
                "worker": {
                    **sessions,
                    "TASKLOOM_SIM_LATENCY_MS": "0",
                    "TASKLOOM_SIM_TOKENS_PER_SECOND": "0",
                    "TASKLOOM_CACHE_ADDR": "",
                    "TASKLOOM_METRICS_ADDR": "",
                },
                "gateway": {**sessions, "TASKLOOM_API_KEYS": "ka=acme,kg=globex"},
            },
        )
        with Stack(cfg) as running:
            yield running.gateway_url


def test_a_session_spans_three_tasks_and_remembers(session_stack: str) -> None:
    acme = TaskloomClient(session_stack, "ka")
    globex = TaskloomClient(session_stack, "kg")
    prompts = ["My name is Ada.", "I like green tea.", "What is my name?"]
    tasks = []
    for prompt in prompts:
        submitted = acme.submit_task("assistant", prompt, session_id="chat-7")
        assert submitted.session_id == "chat-7"
        task = acme.wait_task(submitted.id, timeout=60, poll_interval=0.05)
        assert task.status == "succeeded", task
        tasks.append(task)

    # Each task's prompt held the turns before it, so the model read more each time.
    prompt_tokens = [t.usage.prompt_tokens for t in tasks]
    assert prompt_tokens[0] < prompt_tokens[1] < prompt_tokens[2]

    messages = acme.get_session("chat-7")["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"] * 3
    assert [m["content"] for m in messages[::2]] == prompts
    assert messages[-1]["content"] == tasks[-1].result["text"]

    with pytest.raises(TaskloomError) as other_tenant:
        globex.get_session("chat-7")
    assert other_tenant.value.status == 404
    acme.delete_session("chat-7")
    with pytest.raises(TaskloomError) as deleted:
        acme.get_session("chat-7")
    assert deleted.value.problem["reason"] == "SESSION_NOT_FOUND"
