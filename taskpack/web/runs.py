"""Where the dashboard reads runs: the registry's store (DESIGN §10).

:class:`RunSource` is the read side of the store contract
(:class:`taskpack.store.Store`) the dashboard uses: ``list_runs`` (newest
first, filters, opaque cursors), ``get_run``, ``last_runs`` and ``flush``.
"""

from __future__ import annotations

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
    """The run source of ``registry``: its store."""
    source: RunSource = registry.store
    return source
