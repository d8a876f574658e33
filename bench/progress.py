"""Progress bars for long scenarios (tqdm, on stderr, so tables on stdout stay clean)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def bar(total: int, desc: str, unit: str = "it") -> tqdm:  # type: ignore[type-arg]
    """A bar to advance with .update(n); close it, or use it in `with`."""
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False, mininterval=0.5)


def each(items: Iterable[T], desc: str, total: int | None = None, unit: str = "it") -> Iterator[T]:
    """The items, with a bar that advances as they are taken."""
    yield from tqdm(
        items, desc=desc, total=total, unit=unit, file=sys.stderr, leave=False, mininterval=0.5
    )


@contextmanager
def phases(scenario: str, total: int) -> Iterator[Callable[[str], None]]:
    """A bar over a scenario's phases: call the function it yields with each phase's
    name as the phase starts."""
    bar = tqdm(total=total, desc=scenario, unit="phase", file=sys.stderr, leave=False)
    started = False

    def start(name: str) -> None:
        nonlocal started
        if started:
            bar.update(1)
        started = True
        bar.set_postfix_str(name)

    try:
        yield start
    finally:
        bar.update(bar.total - bar.n)
        bar.close()
