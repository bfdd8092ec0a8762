"""The queue's part of a long-running process (a built server, ``taskpack
dev``): bind ``enqueue_task`` to the store, run a worker when the role says
so, and offer the job API to the web part.

:class:`QueueService` is what :mod:`taskpack.server` and the dev server
hold; it keeps their code to a few calls: :meth:`~QueueService.start` after
the store is open, :meth:`~QueueService.stop` before it closes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..registry import Registry
from ..store import DEFAULT_LEASE
from .binding import bind_queue
from .roles import Role, runs_worker
from .worker import DEFAULT_CONCURRENCY, Worker

logger = logging.getLogger("taskpack.queue")


@dataclass(frozen=True)
class QueueSettings:
    """The ``[queue]`` table: jobs run at once by this process's worker, and
    the lease of a claimed job in seconds."""

    concurrency: int = DEFAULT_CONCURRENCY
    lease: float = DEFAULT_LEASE

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> QueueSettings:
        table = manifest.get("queue") or {}
        return cls(int(table.get("concurrency", DEFAULT_CONCURRENCY)),
                   float(table.get("lease", DEFAULT_LEASE)))


class QueueService:
    """The queue of one process over the store of ``registry()`` (the
    registry current at each call: the dev server swaps it on reload)."""

    def __init__(self, registry: Callable[[], Registry], *, role: Role = "all",
                 settings: QueueSettings | None = None) -> None:
        self.registry = registry
        self.role = role
        self.settings = settings or QueueSettings()
        self.worker: Worker | None = None

    def jobs_api(self) -> Any:
        """The job API (``/_taskpack/jobs``) over the store, an
        :class:`~taskpack.http.Extension` for the task API."""
        from ..web.jobs import JobsApi

        return JobsApi(self.registry)

    def start(self) -> None:
        """Bind ``enqueue_task`` to the (open) store; start the worker when
        the role runs one. Call on the running loop."""
        registry = self.registry()
        bind_queue(registry.store)
        if runs_worker(self.role):
            self.worker = Worker(registry, registry.store,
                                 concurrency=self.settings.concurrency,
                                 lease=self.settings.lease)
            self.worker.start()

    def reloaded(self) -> None:
        """The registry was replaced (dev reload): new jobs run its tasks."""
        if self.worker is not None:
            self.worker.registry = self.registry()

    async def stop(self, grace: float) -> None:
        """Stop the worker (running jobs get ``grace`` seconds) and unbind."""
        worker, self.worker = self.worker, None
        if worker is not None:
            await worker.stop(grace)
        bind_queue(None)
