"""The circuit breaker's states on a clock the test moves."""

from __future__ import annotations

from taskloom.agents.breaker import BreakerState, CircuitBreaker
from taskloom.agents.endpoints import BreakerSettings


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def breaker(clock: Clock, **settings: float) -> tuple[CircuitBreaker, list[BreakerState]]:
    changes: list[BreakerState] = []
    made = CircuitBreaker(BreakerSettings(**settings), clock=clock, on_change=changes.append)
    return made, changes


def test_consecutive_failures_open_it_and_a_success_resets_the_count() -> None:
    clock = Clock()
    b, changes = breaker(clock, failures=3, min_calls=1000)
    b.failure()
    b.failure()
    b.success()
    b.failure()
    b.failure()
    assert b.state == BreakerState.CLOSED
    b.failure()
    assert b.state == BreakerState.OPEN and not b.allow()
    assert changes == [BreakerState.OPEN]


def test_a_failure_ratio_over_the_window_opens_it() -> None:
    clock = Clock()
    b, _ = breaker(clock, failures=100, failure_ratio=0.5, min_calls=4, window_s=10)
    for failed in (False, True, False, True):  # 2 of 4 failed, the last one among them
        b.failure() if failed else b.success()
    assert b.state == BreakerState.OPEN


def test_old_calls_leave_the_window() -> None:
    clock = Clock()
    b, _ = breaker(clock, failures=100, failure_ratio=0.5, min_calls=4, window_s=10)
    b.failure()
    b.failure()
    clock.now += 11  # those two are out of the window now
    for _ in range(3):
        b.success()
    b.failure()
    assert b.state == BreakerState.CLOSED


def test_after_the_cool_down_only_the_probes_go_and_their_success_closes_it() -> None:
    clock = Clock()
    b, changes = breaker(clock, failures=1, cooldown_s=5, half_open_probes=2)
    b.failure()
    clock.now += 4.9
    assert not b.allow() and 0 < b.retry_in_s() <= 0.1
    clock.now += 0.2
    assert b.allow() and b.allow()
    assert not b.allow()  # two probes at most
    assert b.state == BreakerState.HALF_OPEN
    b.success()
    assert b.state == BreakerState.HALF_OPEN  # one probe still out
    b.success()
    assert b.state == BreakerState.CLOSED and b.allow()
    assert changes == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]


def test_a_cancelled_probe_frees_its_place() -> None:
    clock = Clock()
    b, _ = breaker(clock, failures=1, cooldown_s=1)
    b.failure()
    clock.now += 2
    assert b.allow()
    b.release()
    assert b.allow()


def test_a_disabled_breaker_never_opens() -> None:
    b, _ = breaker(Clock(), enabled=False, failures=1)
    for _ in range(10):
        b.failure()
    assert b.allow() and b.state == BreakerState.CLOSED
