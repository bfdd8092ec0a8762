"""The task registry and ``run_task``.

A :class:`Registry` is built from a *manifest*: the plain-data description
of a project's tasks and schedules that the builder writes (and bundles into
every deploy output). It imports a task's module only when the task first
runs, so start-up cost does not grow with the number of tasks.

Concurrency: while a task name is running, another call for the same name
joins the running call and gets the same result or exception ("dedupe",
Nitro's behaviour). The in-flight entry is registered before the caller's
first ``await``, so calls made in the same event-loop tick join too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import TaskLoadError, TaskNotFoundError, TaskNotImplementedError
from .loader import HandlerError, load_handler, unload_handler
from .task import Task, TaskContext, TaskEvent, copy_payload

MANIFEST_VERSION = 1


@dataclass(frozen=True)
class TaskEntry:
    """One task as the manifest lists it; ``handler`` is None when the task
    is listed (in config) without an implementation."""

    name: str
    handler: str | None
    description: str = ""


@dataclass(frozen=True)
class ScheduleEntry:
    """One cron expression and the task names it runs."""

    cron: str
    tasks: tuple[str, ...]


class Registry:
    """Tasks by name, loaded lazily from ``root``.

    ``threads=False`` runs sync task functions inline (Pyodide has no
    threads); otherwise they run in a worker thread.
    """

    def __init__(
        self,
        root: Path,
        tasks: Mapping[str, TaskEntry],
        schedules: tuple[ScheduleEntry, ...] = (),
        *,
        timezone: str = "UTC",
        threads: bool = True,
    ) -> None:
        self.root = root
        self.entries: dict[str, TaskEntry] = dict(sorted(tasks.items()))
        self.schedules = schedules
        self.timezone = timezone
        self.threads = threads
        self._loaded: dict[str, Task] = {}
        self._inflight: dict[tuple[int, str], asyncio.Future[Any]] = {}
        self._background: set[asyncio.Future[Any]] = set()

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any], root: Path, **kwargs: Any) -> Registry:
        """Build a registry from the builder's manifest (see ``builder.manifest``)."""
        version = manifest.get("version")
        if version != MANIFEST_VERSION:
            raise ValueError(f"unsupported manifest version {version!r}")
        tasks = {
            name: TaskEntry(name, spec.get("handler"), spec.get("description", ""))
            for name, spec in manifest["tasks"].items()
        }
        schedules = tuple(
            ScheduleEntry(item["cron"], tuple(item["tasks"])) for item in manifest["schedules"]
        )
        return cls(root, tasks, schedules, timezone=manifest.get("timezone", "UTC"), **kwargs)

    def __contains__(self, name: object) -> bool:
        return name in self.entries

    def listing(self) -> dict[str, Any]:
        """The task list in Nitro's shape (``GET /_nitro/tasks``)."""
        return {
            "tasks": {name: {"description": e.description} for name, e in self.entries.items()},
            "scheduledTasks": [{"cron": s.cron, "tasks": list(s.tasks)} for s in self.schedules],
        }

    def is_loaded(self, name: str) -> bool:
        """Whether the task's module has been imported."""
        return name in self._loaded

    def get(self, name: str) -> Task:
        """The task object, importing its module on first use."""
        task = self._loaded.get(name)
        if task is not None:
            return task
        entry = self.entries.get(name)
        if entry is None:
            raise TaskNotFoundError(name)
        if entry.handler is None:
            raise TaskNotImplementedError(name)
        try:
            task = load_handler(self.root, entry.handler)
        except HandlerError as exc:
            raise TaskLoadError(name, entry.handler, str(exc)) from None
        self._loaded[name] = task
        return task

    def unload(self) -> None:
        """Forget every imported task module of this registry, so a registry
        built afterwards from the same files imports them afresh (the dev
        server's reload). Runs in progress are not affected."""
        self._loaded.clear()
        for entry in self.entries.values():
            if entry.handler is not None:
                unload_handler(self.root, entry.handler)

    def is_running(self, name: str) -> bool:
        """Whether a call of ``name`` is in flight on the running loop (a new
        call would join it)."""
        return (id(asyncio.get_running_loop()), name) in self._inflight

    async def run(
        self,
        name: str,
        payload: Mapping[str, Any] | None = None,
        context: TaskContext | Mapping[str, Any] | None = None,
    ) -> Any:
        """Run ``name`` (or join its running call) and return its result."""
        key = (id(asyncio.get_running_loop()), name)
        running = self._inflight.get(key)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            result = await self._execute(name, payload, context)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # joiners are optional: never "exception never retrieved"
            raise
        else:
            future.set_result(result)
            return result
        finally:
            del self._inflight[key]

    async def _execute(
        self,
        name: str,
        payload: Mapping[str, Any] | None,
        context: TaskContext | Mapping[str, Any] | None,
    ) -> Any:
        task = self.get(name)
        event = TaskEvent(name, copy_payload(payload), self._context(context))
        return await task.invoke(event, threads=self.threads)

    def _context(self, context: TaskContext | Mapping[str, Any] | None) -> TaskContext:
        if isinstance(context, TaskContext):
            if context._wait_until is None:
                context._wait_until = self.wait_until
            return context
        return TaskContext(wait_until=self.wait_until, **dict(context or {}))

    def wait_until(self, awaitable: Awaitable[Any]) -> None:
        """Keep ``awaitable`` running after its task returns; see :meth:`drain`."""
        future = asyncio.ensure_future(awaitable)
        self._background.add(future)
        future.add_done_callback(self._background.discard)

    async def drain(self, timeout: float | None = None) -> None:
        """Wait for background work registered with ``wait_until``."""
        if self._background:
            await asyncio.wait(set(self._background), timeout=timeout)


_current: Registry | None = None


def set_registry(registry: Registry | None) -> None:
    """Make ``registry`` the one :func:`run_task` uses in this process."""
    global _current
    _current = registry


def get_registry() -> Registry:
    """The process's registry; ``RuntimeError`` if none was set."""
    if _current is None:
        raise RuntimeError(
            "no taskpack registry is active: run tasks through `taskpack`, a built bundle, "
            "or call taskpack.set_registry() first"
        )
    return _current


async def run_task(
    name: str,
    payload: Mapping[str, Any] | None = None,
    context: TaskContext | Mapping[str, Any] | None = None,
) -> Any:
    """Run the task ``name`` with ``payload`` and return what its ``run`` returned.

    ``TaskNotFoundError`` for an unknown name, ``TaskNotImplementedError``
    for a task without a handler; exceptions raised by the task propagate.
    """
    return await get_registry().run(name, payload, context)


def run_task_sync(
    name: str,
    payload: Mapping[str, Any] | None = None,
    context: TaskContext | Mapping[str, Any] | None = None,
) -> Any:
    """:func:`run_task` for sync callers (not from inside a running loop).

    Waits for background work the task registered with ``wait_until``.
    """
    registry = get_registry()

    async def main() -> Any:
        try:
            return await registry.run(name, payload, context)
        finally:
            await registry.drain()

    return asyncio.run(main())
