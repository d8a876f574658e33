"""Hot reload of the agent catalog: watches the operator's agent directories and swaps in
the new definitions without a restart. A file that does not validate is refused (a log
line naming the file and the field, and the `taskloom_agent_catalog_reloads_total
{outcome="refused"}` metric) and the agents it defined keep their previous definition."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Sequence
from pathlib import Path

import structlog
import watchfiles

from taskloom.agents.catalog import Catalog, CatalogError, load_catalog

log = structlog.get_logger(__name__)


class CatalogReloader:
    def __init__(
        self,
        dirs: Sequence[Path],
        get: Callable[[], Catalog],
        swap: Callable[[Catalog], None],
        on_outcome: Callable[[str], None],
        providers: Collection[str] = (),
    ) -> None:
        self._dirs = list(dirs)
        self._get = get
        self._swap = swap
        self._on_outcome = on_outcome
        self._providers = providers  # the provider kinds this worker runs; empty = any

    def reload(self) -> list[CatalogError]:
        """Load the directories again and swap in what is valid; returns the refusals."""
        previous = self._get()
        errors: list[CatalogError] = []
        loaded = load_catalog(self._dirs, previous=previous, errors=errors)
        specs, sources = dict(loaded.items()), dict(loaded.sources)
        for name, spec in loaded.items():
            if self._providers and spec.provider not in self._providers:
                errors.append(
                    CatalogError(
                        f"{loaded.sources.get(name, name)}: provider: {spec.provider.value!r} "
                        "is not configured on this worker (restart it to add a provider)"
                    )
                )
                if name in previous:
                    specs[name] = previous[name]
                else:
                    del specs[name], sources[name]
        catalog = Catalog(specs.values(), sources)
        for err in errors:
            log.error("agent definition refused, previous definition kept", error=str(err))
            self._on_outcome("refused")
        added = sorted(set(catalog) - set(previous))
        removed = sorted(set(previous) - set(catalog))
        changed = sorted(n for n in set(catalog) & set(previous) if catalog[n] != previous[n])
        if added or removed or changed:
            self._swap(catalog)
            self._on_outcome("ok")
            log.info("agent catalog reloaded", added=added, removed=removed, changed=changed)
        return errors

    async def run(self, stop: asyncio.Event) -> None:
        """Reload on every change under the directories until `stop` is set."""
        if not self._dirs:
            return
        async for _ in watchfiles.awatch(*self._dirs, stop_event=stop, debounce=200):
            self.reload()
