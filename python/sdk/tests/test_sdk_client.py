"""TaskloomClient and the `taskloom` CLI against the real gateway and a fake orchestrator."""

from __future__ import annotations

import json

import pytest

from taskloom.sdk import cli
from taskloom.sdk.client import TaskloomClient, TaskloomError
from taskloom.testing.fake_orchestrator import FakeOrchestrator
from taskloom.testing.servers import unused_address


def test_submit_get_and_wait(client: TaskloomClient) -> None:
    task = client.submit_task("echo", "one two", labels={"k": "v"}, priority=3)
    assert task["status"] == "queued"
    assert task["tenant"] == "acme"
    assert client.get_task(task["id"])["labels"]["k"] == "v"

    done = client.wait_task(task["id"])
    assert done["status"] == "succeeded"
    assert done["result"] == {"echo": "one two"}
    assert client.wait_task(task["id"], timeout=5)["status"] == "succeeded"


def test_stream_events_yields_chunks_then_done(client: TaskloomClient) -> None:
    task = client.submit_task("echo", "x y z")
    events = list(client.stream_events(task["id"]))
    assert [e.data["text"] for e in events if e.event == "chunk"] == ["x", "y", "z"]
    assert events[-1].event == "done"
    assert events[-1].data["status"] == "succeeded"


def test_errors_carry_the_problem(client: TaskloomClient, fake: FakeOrchestrator) -> None:
    with pytest.raises(TaskloomError) as info:
        client.submit_task("no-such-agent")
    assert info.value.status == 404
    assert info.value.reason == "AGENT_NOT_FOUND"
    assert info.value.problem["type"].endswith("/agent-not-found")

    fake.queue_full = True
    with pytest.raises(TaskloomError) as info:
        client.submit_task("echo")
    assert (info.value.status, info.value.reason) == (429, "QUEUE_FULL")

    with pytest.raises(TaskloomError) as info:
        list(client.stream_events("missing"))
    assert info.value.reason == "TASK_NOT_FOUND"


def test_wrong_key_is_401(base_url: str) -> None:
    with TaskloomClient(base_url, api_key="wrong") as bad, pytest.raises(TaskloomError) as info:
        bad.list_agents()
    assert (info.value.status, info.value.reason) == (401, "UNAUTHENTICATED")


def test_idempotency_key_and_cancel_and_list(client: TaskloomClient) -> None:
    first = client.submit_task("wait", idempotency_key="sdk-1")  # runs until cancelled
    again = client.submit_task("wait", idempotency_key="sdk-1")
    assert again["id"] == first["id"]
    assert client.cancel_task(first["id"], reason="test")["status"] == "cancelled"
    listed = client.list_tasks(status="cancelled")
    assert first["id"] in [t["id"] for t in listed["tasks"]]
    assert [a["name"] for a in client.list_agents()] == ["echo", "wait"]


def test_unreachable_gateway_raises_taskloom_error() -> None:
    with TaskloomClient(f"http://{unused_address()}") as c, pytest.raises(TaskloomError) as info:
        c.get_task("x")
    assert info.value.status is None
    assert info.value.reason == "UNREACHABLE"


def test_cli_submit_wait_get_events_agents(
    base_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--url", base_url, "--api-key", "k1"]
    assert cli.main([*common, "submit", "echo", '"hi there"', "--wait"]) == 0
    done = json.loads(capsys.readouterr().out)
    assert done["status"] == "succeeded"
    assert done["input"] == "hi there"

    assert cli.main([*common, "get", done["id"]]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == done["id"]

    assert cli.main([*common, "events", done["id"]]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[-1]["event"] == "done"

    assert cli.main([*common, "agents"]) == 0
    assert json.loads(capsys.readouterr().out)["agents"][0]["name"] == "echo"

    assert cli.main([*common, "get", "missing"]) == 1
    assert json.loads(capsys.readouterr().err)["reason"] == "TASK_NOT_FOUND"
