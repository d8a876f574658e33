"""AsyncTaskloomClient, and the calls both clients share (batch, workflows as JSON and YAML,
agents, pages), against the real gateway in front of the fake orchestrator."""

from __future__ import annotations

import pytest

from taskloom.sdk.async_client import AsyncTaskloomClient
from taskloom.sdk.client import TaskloomClient, TaskloomError
from taskloom.sdk.models import TaskRequest

WORKFLOW_YAML = """
name: two-steps
steps:
  - {id: first, agent: echo, input: one}
  - {id: second, agent: echo, input: two, depends_on: [first]}
"""


@pytest.mark.asyncio
async def test_async_submit_stream_wait_and_cancel(base_url: str) -> None:
    async with AsyncTaskloomClient(base_url, api_key="k1") as client:
        task = await client.submit_task("echo", "a b", labels={"k": "v"})
        events = [e async for e in client.stream_events(task.id)]
        assert [e.data["text"] for e in events if e.event == "chunk"] == ["a", "b"]
        done = await client.wait_task(task.id)
        assert (done.status, done.result, done.labels["k"]) == ("succeeded", {"echo": "a b"}, "v")
        waiting = await client.submit_task("wait")
        assert (await client.cancel_task(waiting.id)).status == "cancelled"
        page = await client.list_tasks(status="cancelled")
        assert waiting.id in [t.id for t in page.tasks]
        with pytest.raises(TaskloomError) as info:
            await client.get_task("missing")
        assert info.value.reason == "TASK_NOT_FOUND"


@pytest.mark.asyncio
async def test_async_workflow_from_yaml_runs_to_done(base_url: str) -> None:
    async with AsyncTaskloomClient(base_url, api_key="k1") as client:
        started = await client.submit_workflow(WORKFLOW_YAML)
        assert [s.step_id for s in started.steps] == ["first", "second"]
        done = await client.wait_workflow(started.id)
        assert done.status == "succeeded"
        assert (await client.get_workflow(started.id)).status == "succeeded"
        listed = await client.list_workflows(name="two-steps")
        assert started.id in [w.id for w in listed.workflows]


def test_batch_is_all_or_none_and_safe_to_send_again(client: TaskloomClient) -> None:
    requests = [TaskRequest(agent="echo", input=str(n)) for n in range(3)]
    tasks = client.submit_tasks(requests)
    assert [t.input for t in tasks] == ["0", "1", "2"]
    assert all(t.idempotency_key for t in tasks)
    # The same items with the keys the SDK gave them: the same tasks, none queued twice.
    keyed = [
        r.model_copy(update={"idempotency_key": t.idempotency_key})
        for r, t in zip(requests, tasks, strict=True)
    ]
    again = client.submit_tasks(keyed)
    assert [t.id for t in again] == [t.id for t in tasks]
    with pytest.raises(TaskloomError) as info:
        client.submit_tasks([{"agent": "echo"}, {"agent": "no-such-agent"}])
    assert info.value.status == 404


def test_workflow_json_stream_list_and_cancel(client: TaskloomClient) -> None:
    spec = {"name": "held", "steps": [{"id": "only", "agent": "wait"}]}
    workflow = client.submit_workflow(spec)
    assert client.cancel_workflow(workflow.id, "enough").status == "cancelled"
    events = list(client.stream_workflow_events(workflow.id))
    assert events[-1].event == "done" and events[-1].workflow().status == "cancelled"
    first = client.list_workflows(page_size=1)
    assert len(first.workflows) == 1 and first.next_page_token


def test_agents_with_their_tools_and_limits(client: TaskloomClient) -> None:
    agent = client.get_agent("echo")
    assert agent.name == "echo" and isinstance(agent.tools, list)
    with pytest.raises(TaskloomError) as info:
        client.get_agent("nobody")
    assert info.value.status == 404


def test_iter_tasks_follows_the_pages(client: TaskloomClient) -> None:
    submitted = {client.submit_task("echo", "p").id for _ in range(3)}
    seen = [t.id for t in client.iter_tasks(agent="echo", page_size=1)]
    assert submitted <= set(seen) and len(seen) == len(set(seen))
