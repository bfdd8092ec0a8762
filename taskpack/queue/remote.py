"""A queue in a store that this process opens on first use.

For platforms that run no worker of their own (Vercel): ``enqueue_task``
writes the job into a PostgreSQL store, and a ``taskpack worker`` running
elsewhere on the same database runs it. The store is opened lazily, once
per event loop (a connection pool belongs to the loop that made it).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from ..store import Job, NewJob, Store, backend_for


class StoreSink:
    """Enqueues into the store at ``url`` (a relative SQLite path is under ``root``)."""

    def __init__(self, url: str, root: Path) -> None:
        self.url = url
        self.root = root
        self._stores: dict[int, Store] = {}

    async def store(self) -> Store:
        """The open store of the running loop."""
        key = id(asyncio.get_running_loop())
        store = self._stores.get(key)
        if store is None:
            store = backend_for(self.url)(self.url, root=self.root)
            await store.open()
            self._stores = {key: store}  # an older loop's store is gone with its loop
        return store

    async def enqueue(self, job: NewJob) -> Job:
        return await (await self.store()).enqueue(job)
