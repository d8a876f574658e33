"""Task events as Server-Sent Events (over a real uvicorn server) and as WebSocket messages.
The contract tests (those taking `orchestrator` or `client`) run against the fake and the
real orchestrator alike."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
from fastapi.testclient import TestClient

from taskloom.testing.fake_orchestrator import FakeOrchestrator

MakeClient = Callable[..., TestClient]


def _parse_sse(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if line and not line.startswith(":")
        )
        if "event" in fields:
            events.append((fields["event"], json.loads(fields["data"])))
    return events


def test_sse_streams_status_chunks_then_done_and_ends(served: httpx.Client) -> None:
    http = served  # the gateway under uvicorn: TestClient does not stream
    task_id = http.post("/v1/tasks", json={"agent": "echo", "input": "hello big world"}).json()[
        "id"
    ]
    with http.stream("GET", f"/v1/tasks/{task_id}/events") as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = _parse_sse(resp.read().decode())  # returns only once the stream has ended

    names = [name for name, _ in events]
    assert names[0] == "status" and names[-1] == "done"
    assert [d for n, d in events if n == "chunk"] == [
        {"seq": 0, "text": "hello", "attempt": 1},
        {"seq": 1, "text": "big", "attempt": 1},
        {"seq": 2, "text": "world", "attempt": 1},
    ]
    done = events[-1][1]
    assert done["id"] == task_id
    assert done["status"] == "succeeded"
    assert done["result"] == {"echo": "hello big world"}


def test_sse_of_unknown_task_is_404_before_streaming(client: TestClient) -> None:
    resp = client.get("/v1/tasks/nope/events")
    assert resp.status_code == 404
    assert resp.json()["reason"] == "TASK_NOT_FOUND"


def test_websocket_relays_the_same_events(client: TestClient) -> None:
    task_id = client.post("/v1/tasks", json={"agent": "echo", "input": "a b"}).json()["id"]
    messages = []
    with client.websocket_connect(f"/v1/tasks/{task_id}/ws") as ws:
        while True:
            msg = ws.receive_json()
            messages.append(msg)
            if msg["event"] == "done":
                break
    assert [m["data"]["text"] for m in messages if m["event"] == "chunk"] == ["a", "b"]
    assert messages[-1]["data"]["status"] == "succeeded"


def test_websocket_of_unknown_task_sends_an_error_and_closes(client: TestClient) -> None:
    with client.websocket_connect("/v1/tasks/nope/ws") as ws:
        msg = ws.receive_json()
        assert msg["event"] == "error"
        assert msg["data"]["reason"] == "TASK_NOT_FOUND"
        closed = ws.receive()
        assert closed == {"type": "websocket.close", "code": 4404, "reason": "TASK_NOT_FOUND"}


def test_websocket_requires_a_key_when_auth_is_on(make_client: MakeClient) -> None:
    # The gateway alone, in front of the fake orchestrator, from here on.
    client = make_client(api_keys="ka=tenant-a")
    with client.websocket_connect("/v1/tasks/x/ws") as ws:
        assert ws.receive_json()["data"]["reason"] == "UNAUTHENTICATED"


def test_websocket_client_leaving_an_idle_stream_ends_the_watch(
    fake_client: TestClient, fake: FakeOrchestrator
) -> None:
    # `wait` runs until cancelled: no event will come to notice the client has gone.
    task_id = fake_client.post("/v1/tasks", json={"agent": "wait"}).json()["id"]
    with fake_client.websocket_connect(f"/v1/tasks/{task_id}/ws") as ws:
        assert ws.receive_json()["event"] == "status"
        _wait_for(lambda: fake.open_watches == 1)
    _wait_for(lambda: fake.open_watches == 0)


def _wait_for(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10  # generous: a leak fails instead of hanging
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)
