"""A circuit breaker per LLM endpoint, so a failing endpoint is not hammered and its callers
fail fast (or go to a fallback) instead of waiting out timeouts.

closed → open after N consecutive failures, or when the failure ratio over a sliding window
reaches the threshold (with enough calls in it); open → half-open after the cool-down, when
a few probe calls go through; half-open → closed when they succeed, → open on a failure.
Written by hand: it is a few dozen lines of state over the loop's clock, and it must share
the endpoint's settings, metrics and readiness report.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from enum import IntEnum

from taskloom.agents.endpoints import BreakerSettings


class BreakerState(IntEnum):
    """The values are the `taskloom_agent_llm_breaker_state` gauge's."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class CircuitBreaker:
    def __init__(
        self,
        settings: BreakerSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerState], None] | None = None,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._on_change = on_change
        self.state = BreakerState.CLOSED
        self._consecutive = 0
        self._window: deque[tuple[float, bool]] = deque()  # (when, failed)
        self._window_failures = 0
        self._opened_at = 0.0
        self._probes = 0  # probes let through while half-open and not yet answered

    @property
    def enabled(self) -> bool:
        return self._settings.enabled

    def retry_in_s(self) -> float:
        """While open: time until the next probe may go."""
        if self.state != BreakerState.OPEN:
            return 0.0
        return max(0.0, self._opened_at + self._settings.cooldown_s - self._clock())

    def allow(self) -> bool:
        """Whether a call may go now (a half-open breaker lets a few probes through)."""
        if not self._settings.enabled or self.state == BreakerState.CLOSED:
            return True
        if self.state == BreakerState.OPEN:
            if self.retry_in_s() > 0:
                return False
            self._set(BreakerState.HALF_OPEN)
            self._probes = 0
        if self._probes < self._settings.half_open_probes:
            self._probes += 1
            return True
        return False

    def success(self) -> None:
        if not self._settings.enabled:
            return
        self._consecutive = 0
        self._record(False)
        if self.state == BreakerState.HALF_OPEN:
            self._probes = max(0, self._probes - 1)
            if self._probes == 0:
                self._window.clear()
                self._window_failures = 0
                self._set(BreakerState.CLOSED)

    def failure(self) -> None:
        if not self._settings.enabled:
            return
        self._consecutive += 1
        self._record(True)
        if self.state == BreakerState.HALF_OPEN or (
            self.state == BreakerState.CLOSED and self._should_open()
        ):
            self._open()

    def release(self) -> None:
        """A call that was let through ended neither way (cancelled): free its probe."""
        if self.state == BreakerState.HALF_OPEN and self._probes > 0:
            self._probes -= 1

    def _should_open(self) -> bool:
        s = self._settings
        if self._consecutive >= s.failures:
            return True
        calls = len(self._window)
        return calls >= s.min_calls and self._window_failures / calls >= s.failure_ratio

    def _record(self, failed: bool) -> None:
        now = self._clock()
        self._window.append((now, failed))
        self._window_failures += failed
        horizon = now - self._settings.window_s
        while self._window and self._window[0][0] < horizon:
            _, old = self._window.popleft()
            self._window_failures -= old

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._probes = 0
        self._set(BreakerState.OPEN)

    def _set(self, state: BreakerState) -> None:
        if state != self.state:
            self.state = state
            if self._on_change is not None:
                self._on_change(state)
