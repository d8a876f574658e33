"""Hot reload of agent files: changes swap in without a restart; a bad file is refused and
the agents it defined keep their previous definition, with a log line and a metric."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from taskloom.agents.catalog import Catalog, load_catalog
from taskloom.agents.catalog.reload import CatalogReloader

WAIT_S = 10.0


class Holder:
    def __init__(self, directory: Path) -> None:
        self.catalog = load_catalog([directory])
        self.outcomes: list[str] = []
        self.reloader = CatalogReloader(
            [directory], lambda: self.catalog, self.swap, self.outcomes.append, {"simulated"}
        )

    def swap(self, catalog: Catalog) -> None:
        self.catalog = catalog


def test_changed_added_and_removed_files_are_swapped_in(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("name: a\nmodel: one\n")
    (tmp_path / "b.yaml").write_text("name: b\nmodel: one\n")
    holder = Holder(tmp_path)
    (tmp_path / "a.yaml").write_text("name: a\nmodel: two\n")
    (tmp_path / "b.yaml").unlink()
    (tmp_path / "c.yaml").write_text("name: c\nmodel: one\n")
    assert holder.reloader.reload() == []
    assert holder.catalog["a"].model == "two"
    assert "b" not in holder.catalog and "c" in holder.catalog
    assert holder.outcomes == ["ok"]


def test_a_bad_file_is_refused_and_its_agent_keeps_the_old_definition(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("name: a\nmodel: one\n")
    (tmp_path / "b.yaml").write_text("name: b\nmodel: one\n")
    holder = Holder(tmp_path)
    (tmp_path / "a.yaml").write_text("name: a\nmodel: one\ntools: [teleport]\n")
    (tmp_path / "b.yaml").write_text("name: b\nmodel: two\n")
    [error] = holder.reloader.reload()
    assert str(error).startswith(f"{tmp_path / 'a.yaml'}: invalid agent: tools.0")
    assert holder.catalog["a"].model == "one" and holder.catalog["a"].tools == ()
    assert holder.catalog["b"].model == "two"  # nothing else is affected
    assert holder.outcomes == ["refused", "ok"]


def test_an_agent_on_a_provider_the_worker_lacks_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("name: a\nmodel: one\n")
    holder = Holder(tmp_path)
    (tmp_path / "a.yaml").write_text("name: a\nmodel: one\nprovider: anthropic\n")
    [error] = holder.reloader.reload()
    assert "provider: 'anthropic' is not configured on this worker" in str(error)
    assert holder.catalog["a"].provider == "simulated"


@pytest.mark.asyncio
async def test_the_watcher_reloads_when_a_file_changes(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("name: a\nmodel: one\n")
    holder = Holder(tmp_path)
    swapped = asyncio.Event()
    swap = holder.swap

    def swap_and_signal(catalog: Catalog) -> None:
        swap(catalog)
        swapped.set()

    holder.swap = swap_and_signal  # type: ignore[method-assign]
    holder.reloader._swap = swap_and_signal
    stop = asyncio.Event()
    watcher = asyncio.create_task(holder.reloader.run(stop))
    try:
        await asyncio.sleep(0.3)  # let the watcher start before the change
        (tmp_path / "a.yaml").write_text("name: a\nmodel: two\n")
        async with asyncio.timeout(WAIT_S):
            await swapped.wait()
        assert holder.catalog["a"].model == "two"
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(watcher, WAIT_S)
