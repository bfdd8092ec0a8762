"""Where the dashboard reads runs: the registry's store (DESIGN §10).

:class:`RunSource` is the read side of the store contract
(:class:`taskpack.store.Store`) the dashboard uses: ``list_runs`` (newest
first, filters, opaque cursors), ``get_run``, ``last_runs`` and ``flush``.
A registry that has a store (``registry.store``) is read through it; a
registry that still records into a :class:`~taskpack.history.HistoryStore`
is read through :class:`HistoryRuns`, which offers the same calls over it.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from ..registry import Registry
from ..store import RunPage


class RunSource(Protocol):
    """The store's run-history reads, as the dashboard uses them."""

    async def list_runs(self, *, task: str | None = None, outcome: str | None = None,
                        trigger: str | None = None, limit: int = 20,
                        cursor: str | None = None) -> RunPage: ...

    async def get_run(self, run_id: str) -> Any: ...

    async def last_runs(self) -> dict[str, Any]: ...

    async def flush(self, timeout: float = 5.0) -> bool: ...


def run_source(registry: Registry) -> RunSource:
    """The run source of ``registry``: its store when it has one."""
    store = getattr(registry, "store", None)
    if store is not None:
        source: RunSource = store
        return source
    return HistoryRuns(registry)


class HistoryRuns:
    """The store's read calls over a registry's :class:`HistoryStore`
    (at most ``history_limit`` runs per task, so filtering in memory stays
    bounded). Cursors are offsets into the filtered list; SQLite reads run
    in a thread when the registry has threads."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    async def _call(self, fn: Any, *args: Any) -> Any:
        if self.registry.threads:
            return await asyncio.to_thread(fn, *args)
        return fn(*args)

    async def list_runs(self, *, task: str | None = None, outcome: str | None = None,
                        trigger: str | None = None, limit: int = 20,
                        cursor: str | None = None) -> RunPage:
        history = self.registry.history
        everything = await self._call(history.runs, task, 10**9)
        matching = [
            run for run in everything
            if (outcome is None or run.outcome == outcome)
            and (trigger is None or run.trigger == trigger
                 or (trigger == "schedule" and run.trigger.startswith("schedule:")))
        ]
        start = int(cursor) if cursor and cursor.isdigit() else 0
        page = matching[start:start + limit]
        following = start + limit
        return RunPage(page, str(following) if following < len(matching) else None)

    async def get_run(self, run_id: str) -> Any:
        everything = await self._call(self.registry.history.runs, None, 10**9)
        return next((run for run in everything if run.id == run_id), None)

    async def last_runs(self) -> dict[str, Any]:
        found: dict[str, Any] = await self._call(self.registry.history.last_runs)
        return found

    async def flush(self, timeout: float = 5.0) -> bool:
        flush = getattr(self.registry.history, "flush", None)
        if flush is not None:
            await self._call(flush)
        return True
