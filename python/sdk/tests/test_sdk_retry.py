"""Retries: 429 and 503 answers asked again after Retry-After, submits made safe to repeat
by the idempotency key the SDK sends, and giving up after the policy's retries."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from taskloom.gateway.config import Settings
from taskloom.sdk.client import TaskloomClient, TaskloomError
from taskloom.sdk.retry import RetryPolicy, retry_after_seconds
from taskloom.testing.fake_orchestrator import FakeOrchestrator
from taskloom.testing.servers import serve_gateway


def answer(status: int, retry_after: str | None = None) -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return httpx.Response(status, headers=headers)


def test_retry_after_in_seconds_or_as_a_date() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds(answer(429, "7")) == 7.0
    assert retry_after_seconds(answer(429, "Thu, 01 Jan 2026 12:00:05 GMT"), now) == 5.0
    assert retry_after_seconds(answer(429, "Thu, 01 Jan 2026 11:00:00 GMT"), now) == 0.0
    assert retry_after_seconds(answer(429, "soon")) is None
    assert retry_after_seconds(answer(429)) is None


def test_the_policy_waits_what_the_server_says_within_its_bounds() -> None:
    policy = RetryPolicy(max_retries=2, backoff=0.5, max_wait=10)
    assert policy.wait_before(1, answer(429, "3"), repeatable=False) == 3.0
    assert policy.wait_before(1, answer(429, "60"), repeatable=False) == 10  # capped
    assert policy.wait_before(2, answer(503), repeatable=True) == 1.0  # backoff 0.5 * 2
    assert policy.wait_before(3, answer(429, "1"), repeatable=True) is None  # out of retries
    # A 503 may come after the orchestrator acted: only repeatable calls go again.
    assert policy.wait_before(1, answer(503, "1"), repeatable=False) is None
    assert policy.wait_before(1, answer(500), repeatable=True) is None
    assert policy.wait_before(1, answer(404), repeatable=True) is None


class Recording(httpx.HTTPTransport):
    """A real HTTP transport that notes each answer's status and each submit's key."""

    def __init__(self, fake: FakeOrchestrator | None = None) -> None:
        super().__init__()
        self.fake = fake
        self.statuses: list[int] = []
        self.keys: list[str | None] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        self.statuses.append(response.status_code)
        self.keys.append(request.headers.get("Idempotency-Key"))
        if response.status_code == 429 and self.fake is not None:
            self.fake.queue_full = False  # the queue drains while the client waits
        return response


def test_a_full_queue_is_retried_with_the_same_idempotency_key(
    base_url: str, fake: FakeOrchestrator
) -> None:
    fake.queue_full = True
    transport = Recording(fake)
    policy = RetryPolicy(max_wait=0.05)  # the gateway says 1 s; the test need not wait it
    with TaskloomClient(base_url, api_key="k1", retry=policy, transport=transport) as client:
        task = client.submit_task("echo", "again")
    assert transport.statuses == [429, 202]
    assert transport.keys[0] is not None and transport.keys == [transport.keys[0]] * 2
    assert task.idempotency_key == transport.keys[0]


def test_a_rate_limited_key_gives_up_after_the_policys_retries(orchestrator_addr: str) -> None:
    settings = Settings(
        orchestrator_addr=orchestrator_addr, api_keys="k1=acme", key_rate_limit="2/minute"
    )
    transport = Recording()
    policy = RetryPolicy(max_retries=2, max_wait=0)
    with (
        serve_gateway(settings) as url,
        TaskloomClient(url, api_key="k1", retry=policy, transport=transport) as client,
    ):
        client.list_agents()
        client.list_agents()
        with pytest.raises(TaskloomError) as info:
            client.list_agents()
    assert (info.value.status, info.value.reason) == (429, "RATE_LIMITED")
    assert transport.statuses == [200, 200, 429, 429, 429]
