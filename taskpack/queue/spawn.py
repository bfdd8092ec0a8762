"""``spawn_task``: run a task in this process without waiting for it, and
without ever losing its error.

Nitro's fire-and-forget ``runTask`` swallows a failure. Here a spawned run
goes through the registry's normal execution (options, hooks, history with
trigger ``spawn``), and a failure is also logged with its traceback on the
``taskpack.queue`` logger. The run is background work of the registry
(``wait_until``), so a server's shutdown, the CLI and ``run_task_sync``
wait for it within ``shutdown_grace``. Nothing is persisted: a spawned run
dies with its process; use :func:`~taskpack.enqueue_task` for durable work.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from ..registry import Registry, get_registry
from ..task import TaskContext
from .enqueue import check_task

logger = logging.getLogger("taskpack.queue")


class SpawnHandle:
    """A spawned run: ``await handle`` (or :meth:`result`) gives its result
    or raises its exception; :meth:`done` and :meth:`cancel` as on a task."""

    def __init__(self, name: str, future: asyncio.Future[Any]) -> None:
        self.name = name
        self._future = future

    def done(self) -> bool:
        return self._future.done()

    def cancel(self) -> bool:
        return self._future.cancel()

    def result(self) -> Any:
        """The result of a finished run (``InvalidStateError`` while running)."""
        return self._future.result()

    def __await__(self) -> Any:
        return self._future.__await__()

    def __repr__(self) -> str:
        state = "done" if self.done() else "running"
        return f"<SpawnHandle {self.name} {state}>"


def spawn_task(name: str, payload: Mapping[str, Any] | None = None, *,
               registry: Registry | None = None) -> SpawnHandle:
    """Start task ``name`` in the background of the running event loop and
    return at once. The name and payload are checked first, in the caller
    (``TaskNotFoundError``, ``PayloadValidationError``); ``RuntimeError``
    outside a running event loop."""
    registry = registry or get_registry()
    data, _ = check_task(registry, name, payload)
    asyncio.get_running_loop()
    task = asyncio.ensure_future(registry.run(name, data, TaskContext(trigger="spawn")))
    task.add_done_callback(lambda done: _report(name, done))
    registry.wait_until(task)
    return SpawnHandle(name, task)


def _report(name: str, task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("spawned task %s failed", name, exc_info=task.exception())
