"""When the SDK asks again: 429 and 503 answers, after the server's `Retry-After` (seconds or
an HTTP date) or else an exponential backoff. A loop of a few lines rather than a retry
library: the wait comes from each response, which is what this module computes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

RETRY_STATUSES = frozenset({429, 503})


def retry_after_seconds(response: httpx.Response, now: datetime | None = None) -> float | None:
    """The response's Retry-After in seconds (RFC 9110 §10.2.3), None when absent or bad."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@dataclass(frozen=True)
class RetryPolicy:
    """`max_retries` more attempts after the first; waits capped at `max_wait` seconds.

    429 (a rate limit, a full queue) is retried for every call: the gateway refused it
    before acting. 503 (orchestrator unreachable) only for calls that are safe to repeat:
    reads, and writes with an Idempotency-Key, which the SDK always sends on submits.
    """

    max_retries: int = 3
    backoff: float = 0.5
    max_wait: float = 30.0

    def backoff_for(self, retry: int) -> float:
        """The wait before retry number `retry` (1, 2, ...) when the server names none."""
        return float(min(self.max_wait, self.backoff * 2 ** (retry - 1)))

    def wait_before(self, retry: int, response: httpx.Response, repeatable: bool) -> float | None:
        """Seconds to wait before retry number `retry`, or None to give up."""
        if retry > self.max_retries or response.status_code not in RETRY_STATUSES:
            return None
        if response.status_code == 503 and not repeatable:
            return None
        named = retry_after_seconds(response)
        return min(self.max_wait, named if named is not None else self.backoff_for(retry))


NO_RETRIES = RetryPolicy(max_retries=0)
