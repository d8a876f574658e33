"""Python tools the tests name in agent files as `tools_for_tests:<function>` (the
`test_tools_importable` fixture puts this directory on sys.path)."""

from __future__ import annotations

import asyncio
from typing import Any

WAIT_S = 10.0
inside = 0  # calls of `rendezvous` running now
most_inside = 0  # the most that ran at once
calls: list[dict[str, Any]] = []
together = asyncio.Event()


def reset() -> None:
    global inside, most_inside, together, released
    inside = most_inside = 0
    calls.clear()
    together = asyncio.Event()
    released = asyncio.Event()


def add(a: int, b: int) -> dict[str, int]:
    """Add two integers (a sync tool: runs in a thread)."""
    calls.append({"a": a, "b": b})
    return {"sum": a + b}


async def rendezvous(name: str) -> dict[str, Any]:
    """Waits until two calls are inside at once (bounded, so a sequential run fails
    instead of hanging)."""
    global inside, most_inside
    inside += 1
    most_inside = max(most_inside, inside)
    if most_inside >= 2:
        together.set()
    try:
        async with asyncio.timeout(WAIT_S):
            await together.wait()
        return {"name": name, "together": True}
    except TimeoutError:
        return {"name": name, "together": False}
    finally:
        inside -= 1


async def sleep_forever(context: Any) -> None:
    calls.append({"task": context.task.task_id})
    await asyncio.sleep(3600)


parameters_from_code = {"type": "object", "properties": {"x": {"type": "integer"}}}


def documented(x: int) -> int:
    """Doubles x."""
    return 2 * x


documented.parameters = parameters_from_code  # type: ignore[attr-defined]


released = asyncio.Event()


async def lend_credit(context: Any) -> str:
    """Waits for `released` with the task's credit lent to the hub (as the agent tool does)."""
    async with context.suspend_credit():
        await released.wait()
    return "released"
