"""The task registry and ``run_task``.

A :class:`Registry` is built from a *manifest*: the plain-data description
of a project's tasks and schedules that the builder writes (and bundles into
every deploy output). It imports a task's module only when the task first
runs, so start-up cost does not grow with the number of tasks; with
threads, the import happens in a worker thread, so a slow module does not
stall the event loop.

The registry only finds and loads tasks; how a run is carried out (the
concurrency mode, retries, timeouts, hooks, payload validation) is the
execution layer's, :class:`taskpack.execution.Runner`, one per loaded task.
Finished runs go to the registry's store (:mod:`taskpack.store`), its run
history. By default ("dedupe", Nitro's behaviour) a call for a task
that is running joins the running call and gets the same result or
exception, also for calls made in the same event-loop tick.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from . import events
from .errors import TaskLoadError, TaskNotFoundError, TaskNotImplementedError
from .execution import TASK_THREADS, JobAttempt, Runner
from .loader import HandlerError, load_handler, unload_handler
from .options import apply_overrides
from .store import DEFAULT_HISTORY_LIMIT, RunRecord, Store, StoreUnavailable, store_for
from .task import JobInfo, Task, TaskContext, copy_payload

logger = logging.getLogger(__name__)

MANIFEST_VERSION = 1

IN_MEMORY = "<in-memory>"

READ_TIMEOUT = 5.0
"""Seconds a listing waits for the store's last runs, and ``run_task_sync``
for the run to be stored."""
"""The handler of a task given to :meth:`Registry.of` (never imported)."""


@dataclass(frozen=True)
class TaskEntry:
    """One task as the manifest lists it; ``handler`` is None when the task
    is listed (in config) without an implementation. ``options`` are the
    config's per-task options; they override the ``define_task`` ones."""

    name: str
    handler: str | None
    description: str = ""
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class ScheduleEntry:
    """One cron expression and the task names it runs."""

    cron: str
    tasks: tuple[str, ...]


class Registry:
    """Tasks by name, loaded lazily from ``root``.

    ``threads=False`` runs sync task functions inline (Pyodide has no
    threads); otherwise they run in a worker thread. ``store`` is where runs
    are recorded (and jobs and fire claims kept): a
    :class:`~taskpack.store.Store`, or a store URL (default ``memory://``; a
    relative SQLite path is relative to ``root``), keeping ``history_limit``
    runs per task. The store is :attr:`store`; :meth:`open` and
    :meth:`close` are its lifecycle (a server's startup and shutdown).
    """

    def __init__(
        self,
        root: Path,
        tasks: Mapping[str, TaskEntry],
        schedules: tuple[ScheduleEntry, ...] = (),
        *,
        timezone: str = "UTC",
        threads: bool = True,
        store: Store | str | None = None,
        history_limit: int = DEFAULT_HISTORY_LIMIT,
    ) -> None:
        self.root = root
        self.entries: dict[str, TaskEntry] = dict(sorted(tasks.items()))
        self.schedules = schedules
        self.timezone = timezone
        self.threads = threads
        if isinstance(history_limit, bool) or not isinstance(history_limit, int) \
                or history_limit < 1:
            raise ValueError(f"history limit must be an integer >= 1, got {history_limit!r}")
        self.store: Store = (store if isinstance(store, Store) else
                             store_for(store or "memory://", root=root,
                                       history_limit=history_limit))
        self._loaded: dict[str, Task] = {}
        self._runners: dict[str, Runner] = {}
        self._background: set[asyncio.Future[Any]] = set()
        self._load_locks: dict[str, threading.Lock] = {}
        self._loading: dict[str, asyncio.Future[Runner]] = {}

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any], root: Path, **kwargs: Any) -> Registry:
        """Build a registry from the builder's manifest (see ``builder.manifest``).

        The manifest's ``store`` table supplies ``history_limit`` unless
        ``kwargs`` give it; which store to use (``store=``) is the caller's
        choice (see :func:`taskpack.store.urls.resolve_url`; default
        ``memory://``).
        """
        version = manifest.get("version")
        if version != MANIFEST_VERSION:
            raise ValueError(f"unsupported manifest version {version!r}")
        tasks = {
            name: TaskEntry(
                name,
                spec.get("handler"),
                spec.get("description", ""),
                MappingProxyType(dict(spec.get("options") or {})),
            )
            for name, spec in manifest["tasks"].items()
        }
        schedules = tuple(
            ScheduleEntry(item["cron"], tuple(item["tasks"])) for item in manifest["schedules"]
        )
        settings = manifest.get("store") or {}
        kwargs.setdefault("history_limit", settings.get("history_limit", DEFAULT_HISTORY_LIMIT))
        return cls(root, tasks, schedules, timezone=manifest.get("timezone", "UTC"), **kwargs)

    @classmethod
    def of(cls, tasks: Mapping[str, Task], root: Path | None = None, **kwargs: Any) -> Registry:
        """A registry of tasks already in memory (embedding in an app, tests).

        Each task is listed under its key, with its ``description``; nothing
        is imported. ``root`` (default: the current folder) is what a
        relative SQLite store path is relative to; ``kwargs`` are the
        constructor's (``threads``, ``store``, ...).
        """
        entries = {
            name: TaskEntry(name, IN_MEMORY, task.description or "") for name, task in tasks.items()
        }
        registry = cls(root or Path.cwd(), entries, **kwargs)
        registry._loaded.update(tasks)
        return registry

    def __contains__(self, name: object) -> bool:
        return name in self.entries

    def listing(self) -> dict[str, Any]:
        """The task list in Nitro's shape (``GET /_nitro/tasks``)."""
        tasks: dict[str, dict[str, Any]] = {
            name: {"description": e.description} for name, e in self.entries.items()
        }
        return {
            "tasks": tasks,
            "scheduledTasks": [{"cron": s.cron, "tasks": list(s.tasks)} for s in self.schedules],
        }

    async def listing_with_last_runs(self, timeout: float = READ_TIMEOUT) -> dict[str, Any]:
        """:meth:`listing` where each task also has ``"lastRun"``: its newest
        run as a dict, or ``None`` (the dev server's listing). A store that
        cannot be read within ``timeout`` seconds is logged and every
        ``lastRun`` is ``None``: like a failed write, it never fails the
        listing."""
        listing = self.listing()
        try:
            last = await asyncio.wait_for(self.store.last_runs(), timeout)
        except Exception as exc:  # any store's failure, a timeout
            logger.error("store: cannot read the last runs: %s",
                         str(exc) or type(exc).__name__)
            last = {}
        for name, info in listing["tasks"].items():
            run = last.get(name)
            info["lastRun"] = None if run is None else run.to_dict()
        return listing

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
            raise TaskNotFoundError(name, self.entries)
        if entry.handler is None:
            raise TaskNotImplementedError(name)
        try:
            task = load_handler(self.root, entry.handler, name)
        except HandlerError as exc:
            raise TaskLoadError(name, entry.handler, str(exc)) from None
        self._loaded[name] = task
        return task

    def runner(self, name: str) -> Runner:
        """The execution policy of ``name``: its task loaded, with the
        config's options laid over the ``define_task`` ones."""
        runner = self._runners.get(name)
        if runner is not None:
            return runner
        with self._load_locks.setdefault(name, threading.Lock()):  # one import per task
            runner = self._runners.get(name)
            if runner is None:
                runner = self._make_runner(name)
        return runner

    def _make_runner(self, name: str) -> Runner:
        task = self.get(name)
        entry = self.entries[name]
        try:
            options = apply_overrides(repr(name), task.options, entry.options)
        except (TypeError, ValueError) as exc:
            raise TaskLoadError(name, entry.handler or "", str(exc)) from None
        runner = Runner(name, task, options, threads=self.threads,
                        make_context=self._context, record=self._record)
        self._runners[name] = runner
        return runner

    def unload(self) -> None:
        """Forget every imported task module of this registry, so a registry
        built afterwards from the same files imports them afresh (the dev
        server's reload). Runs in progress are not affected."""
        self._loaded.clear()
        self._runners.clear()
        for entry in self.entries.values():
            if entry.handler is not None and entry.handler != IN_MEMORY:
                unload_handler(self.root, entry.handler)

    def is_running(self, name: str) -> bool:
        """Whether a run of ``name`` is in flight on the running loop (under
        the default ``dedupe`` mode, a new call would join it)."""
        runner = self._runners.get(name)
        return runner is not None and runner.is_running()

    async def run(
        self,
        name: str,
        payload: Mapping[str, Any] | None = None,
        context: TaskContext | Mapping[str, Any] | None = None,
    ) -> Any:
        """Run ``name`` under its options and return its result.

        ``TypeError`` for a payload that is not a mapping; see
        :mod:`taskpack.execution` for everything else.
        """
        runner = self._runners.get(name) or await self._runner(name)
        return await runner.submit(copy_payload(payload), context)

    async def _runner(self, name: str) -> Runner:
        if self.threads and name not in self._loaded:
            return await self._load_off_loop(name)
        return self.runner(name)

    async def _load_off_loop(self, name: str) -> Runner:
        """:meth:`runner` in a worker thread, so a slow import does not stall
        the event loop. Calls arriving meanwhile wait for the same load and
        resume in arrival order (the first one starts the run the others
        join, as when the task was already loaded)."""
        loading = self._loading.get(name)
        if loading is None:
            loop = asyncio.get_running_loop()
            loading = loop.run_in_executor(TASK_THREADS, self.runner, name)
            self._loading[name] = loading
            loading.add_done_callback(lambda _: self._loading.pop(name, None))
        return await asyncio.shield(loading)

    async def run_job(self, name: str, payload: Mapping[str, Any], context: TaskContext,
                      job: JobInfo) -> JobAttempt:
        """Carry out one attempt of a queued job of ``name`` under its
        options (:meth:`taskpack.execution.Runner.run_job`). A task that
        cannot be found or loaded raises its :class:`TaskError` here."""
        runner = self._runners.get(name) or await self._runner(name)
        return await runner.run_job(copy_payload(payload), context, job)

    def _record(self, run: RunRecord) -> None:
        self.store.record_run(run)
        if events.has_subscribers():
            events.run_finished(run)

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

    async def open(self) -> None:
        """Open the store (connect, apply migrations). :class:`StoreError`
        when it cannot be used: a bad URL, auth refused, a server that does
        not answer, a schema newer than this code, a file that is not a
        store; callers report it in one line (exit 2). A SQLite file whose
        disk refuses writes (a read-only folder) is only logged: tasks run
        on, their runs are lost and counted (``store.health()``)."""
        try:
            await self.store.open()
        except StoreUnavailable as exc:
            if self.store.scheme != "sqlite":
                raise
            logger.error("%s; runs are not recorded until it can be written", exc)

    async def close(self, timeout: float = 5.0) -> None:
        """Store what the run history still buffers (waiting at most
        ``timeout`` seconds) and release the store. Call it when the
        registry is done with, e.g. at server shutdown after :meth:`drain`."""
        try:
            await self.store.close(timeout)
        except Exception as exc:  # closing never fails a shutdown
            logger.error("store: closing failed: %s", exc)

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
            await registry.store.flush(READ_TIMEOUT)

    return asyncio.run(main())
