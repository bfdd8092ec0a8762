"""The store: run history, jobs and schedule fire claims in one place (DESIGN §10, §11).

One contract, :class:`Store`, with backends chosen by URL scheme:

=====================  ==========================================  =========================
URL                    backend                                     for
=====================  ==========================================  =========================
``sqlite:///path``     :mod:`taskpack.store.sqlite` (stdlib)       one host (the default)
``postgresql://…``     :mod:`taskpack.store.postgres` (psycopg 3)  many hosts
``memory://``          :mod:`taskpack.store.memory`                one process (Pyodide,
                                                                   Vercel, library use)
=====================  ==========================================  =========================

A backend module is imported only when its scheme is opened, so the
runtime needs neither ``sqlite3`` (absent under Pyodide) nor ``psycopg``
unless it is used. This module imports no backend (DESIGN §14: the
contract never depends on its implementations).

Time is epoch seconds (``float``) throughout, as the store's clock sees it
at the caller (``time.time()``); fire times of schedules are epoch
milliseconds (``int``), as ``scheduledTime`` is.
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, NamedTuple
from urllib.parse import urlsplit

Outcome = Literal["ok", "error", "timeout", "invalid", "cancelled"]
OUTCOMES: tuple[Outcome, ...] = ("ok", "error", "timeout", "invalid", "cancelled")

JobStatus = Literal["pending", "running", "succeeded", "failed", "cancelled"]
JOB_STATUSES: tuple[JobStatus, ...] = ("pending", "running", "succeeded", "failed", "cancelled")

KeyMode = Literal["replace", "preserve"]

DEFAULT_URL = "sqlite:///.taskpack/store.sqlite"
"""The store when nothing is configured; relative to the project root (dev)
or the working directory (built servers)."""

DEFAULT_HISTORY_LIMIT = 1000
"""Runs kept per task."""

DEFAULT_LEASE = 30.0
"""Seconds a claimed job stays locked without a heartbeat."""


class StoreError(Exception):
    """A store problem that is the user's to fix (bad URL, auth refused,
    store newer than the code). Its message is one line and never holds a
    password."""


class StoreUnavailable(StoreError):
    """The store cannot be reached right now (connection refused or lost,
    database restarting, disk refusing writes). Callers that loop (the
    scheduler, workers) retry with backoff; one-shot callers report it."""


class RunRecord(NamedTuple):
    """One finished run (immutable).

    ``id`` is unique across hosts (hex). ``trigger`` is ``manual``,
    ``http``, ``spawn``, ``job`` or ``schedule:<cron>``. ``payload_hash`` is
    the first 16 hex digits of the SHA-256 of the payload's canonical JSON,
    as received. ``started_at``/``finished_at`` are epoch seconds.
    ``attempts`` is 0 when the payload was rejected. ``error`` is
    ``"ExceptionType: message"`` or None. ``host`` is ``hostname:pid`` of the
    process that ran it. ``payload`` and ``result`` are JSON-ready values
    (a backend may store a truncated form of large ones), ``traceback`` the
    formatted traceback of a failure, ``job_id`` the job this run carried
    out, if any. Strings that cannot be encoded (lone surrogates) are stored
    with replacement characters.
    """

    id: str
    task: str
    trigger: str
    payload_hash: str
    started_at: float
    finished_at: float
    duration_ms: float
    attempts: int
    outcome: Outcome
    error: str | None = None
    host: str = ""
    payload: Any = None
    result: Any = None
    traceback: str | None = None
    job_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready data (HTTP endpoints and ``--json``)."""
        return self._asdict()


@dataclass(frozen=True)
class RunPage:
    """A page of runs, newest first, and the cursor of the next (older) page
    (None on the last page). Cursors are opaque strings."""

    runs: list[RunRecord]
    next_cursor: str | None = None


@dataclass(frozen=True)
class NewJob:
    """What :meth:`Store.enqueue` stores (already validated by the caller).

    ``max_attempts`` is 1 + the task's retries; ``queue`` names a serial
    queue (None: no ordering constraint); ``key`` with ``key_mode``
    ``replace`` updates a *pending* job with the same key (payload, run_at,
    priority, queue) and ``preserve`` returns it unchanged; a job with that
    key that is running, finished or cancelled does not hold the key.
    ``trigger`` is recorded on the job's runs (``job``, or
    ``schedule:<cron>`` for jobs a schedule fire created).
    """

    task: str
    payload: Mapping[str, Any]
    run_at: float
    max_attempts: int = 1
    queue: str | None = None
    key: str | None = None
    key_mode: KeyMode = "replace"
    priority: int = 0
    trigger: str = "job"


@dataclass(frozen=True)
class Job:
    """A job as stored. ``attempts`` counts attempts started so far;
    ``locked_by``/``locked_until`` are set while a worker holds it;
    ``result`` is the last successful attempt's JSON-ready return value;
    ``last_error``/``traceback`` are the last failed attempt's. Times are
    epoch seconds."""

    id: str
    task: str
    payload: dict[str, Any]
    status: JobStatus
    run_at: float
    created_at: float
    updated_at: float
    attempts: int = 0
    max_attempts: int = 1
    queue: str | None = None
    key: str | None = None
    priority: int = 0
    trigger: str = "job"
    locked_by: str | None = None
    locked_until: float | None = None
    last_error: str | None = None
    traceback: str | None = None
    result: Any = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data (HTTP and ``--json``)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True)
class Finish:
    """One ended attempt for :meth:`Store.finish_many`: the arguments of
    :meth:`Store.finish` but the worker."""

    job_id: str
    ok: bool
    result: Any = None
    error: str | None = None
    traceback: str | None = None
    retry_at: float | None = None


@dataclass(frozen=True)
class FireClaim:
    """One scheduled fire to claim: the schedule's stable id (its cron, time
    zone and task list hashed, see :func:`schedule_id`), the fire instant in
    epoch milliseconds, and the jobs it turns into if this host wins."""

    schedule: str
    fire_ms: int
    jobs: Sequence[NewJob] = field(default_factory=tuple)


@dataclass(frozen=True)
class MigrationStatus:
    """``current`` is the store's schema version (0: empty), ``latest`` the
    newest this code knows, ``pending`` the versions :meth:`Store.migrate`
    would apply."""

    current: int
    latest: int
    pending: tuple[int, ...] = ()


class Store:
    """The contract every backend implements (Huey's ``storage.py`` style).

    All methods but :meth:`record_run` are coroutines and may raise
    :class:`StoreUnavailable` (retry later) or :class:`StoreError` (give
    up, tell the user). Every method is safe to call from many tasks of one
    event loop at once; a backend that needs threads (SQLite) hides them.

    **Lifecycle.** :meth:`open` connects and applies pending migrations
    (under an advisory lock on Postgres, an exclusive transaction on
    SQLite), so any number of processes may open a store at once; it raises
    :class:`StoreError` when the store's schema is newer than this code.
    :meth:`close` flushes buffered runs (bounded by its timeout) and
    releases connections. A store that was not opened opens itself on
    first use; servers open it at start so a store that cannot be used
    stops them there. :meth:`health` never raises: it returns
    ``{"ok": bool, "backend": str, "error": str | None, "lost_runs": int}``
    for ``/_health``. Cursors (``list_runs``, ``list_jobs``) are opaque;
    one no page gave is a ``ValueError``.

    **Run history.** :meth:`record_run` is synchronous, never blocks and
    never raises: it appends to a bounded in-memory buffer that a background
    writer stores in batches; when the buffer is full or the store refuses
    writes, runs are dropped, counted in ``health()["lost_runs"]`` and
    logged once per state change. Losing a history row never fails a task.
    :meth:`flush` waits (at most ``timeout`` seconds) until what was
    recorded before the call is stored; it returns whether it all was.
    Each task keeps at most ``history_limit`` runs, the oldest dropped.

    **Jobs.** :meth:`enqueue` stores a job (key rules in :class:`NewJob`)
    and wakes workers. :meth:`claim` locks up to ``limit`` due pending jobs
    for ``worker`` for ``lease`` seconds, marking them ``running`` and
    counting an attempt, in (priority, run_at, id) order (a lower
    ``priority`` first, as graphile-worker); a pending job
    whose ``queue`` has a running job is skipped, and at most one job per
    queue is claimed, so a named queue runs one job at a time across all
    workers and hosts. Jobs whose lease expired are claimable again (their
    worker died). :meth:`heartbeat` extends the leases ``worker`` still
    holds and returns their ids (a job missing from the answer was lost to
    another worker: stop treating it as ours). :meth:`finish` ends an
    attempt: ``succeeded`` with a result, or a failure that either retries
    (``retry_at`` given: back to ``pending`` at that time) or is final
    (``failed``); it does nothing and returns None if ``worker`` no longer
    holds the job (:meth:`finish_many` ends several in one call).
    :meth:`wait_for_jobs` returns when a job may be due
    (NOTIFY on Postgres, an in-process event plus a short poll on SQLite)
    or after ``timeout``. :meth:`cancel` and :meth:`retry` act on one job
    and return it (None if unknown); cancelling a running job lets its
    attempt finish but records no retry; retrying works on ``failed`` and
    ``cancelled`` jobs (a fresh set of attempts, due now).

    **Schedule claims.** :meth:`claim_fire` inserts (schedule, fire_ms) so
    that exactly one caller across every process and host wins; the winner's
    jobs are stored in the same transaction, so a fire is never claimed
    without its jobs. :meth:`last_fire` is the newest claimed fire of a
    schedule (None: never fired here, a new schedule), for backfill.
    """

    scheme: ClassVar[str]
    history_limit: int

    def __init__(self, url: str, *, root: Path, history_limit: int = DEFAULT_HISTORY_LIMIT
                 ) -> None:
        """No I/O here (that is :meth:`open`'s): a relative SQLite path is
        relative to ``root``; ``history_limit`` runs are kept per task."""
        raise NotImplementedError

    async def open(self) -> None:
        raise NotImplementedError

    async def close(self, timeout: float = 5.0) -> None:
        raise NotImplementedError

    async def health(self) -> dict[str, Any]:
        raise NotImplementedError

    async def migration_status(self) -> MigrationStatus:
        raise NotImplementedError

    async def migrate(self) -> MigrationStatus:
        raise NotImplementedError

    # run history

    def record_run(self, run: RunRecord) -> None:
        raise NotImplementedError

    async def flush(self, timeout: float = 5.0) -> bool:
        raise NotImplementedError

    async def list_runs(self, *, task: str | None = None, outcome: str | None = None,
                        trigger: str | None = None, limit: int = 20,
                        cursor: str | None = None) -> RunPage:
        """Runs newest first. ``trigger="schedule"`` matches every
        ``schedule:<cron>``; other filters match exactly."""
        raise NotImplementedError

    async def get_run(self, run_id: str) -> RunRecord | None:
        raise NotImplementedError

    async def last_runs(self) -> dict[str, RunRecord]:
        raise NotImplementedError

    # jobs

    async def enqueue(self, job: NewJob) -> Job:
        raise NotImplementedError

    async def claim(self, worker: str, limit: int, lease: float = DEFAULT_LEASE) -> list[Job]:
        raise NotImplementedError

    async def heartbeat(self, worker: str, job_ids: Sequence[str],
                        lease: float = DEFAULT_LEASE) -> set[str]:
        raise NotImplementedError

    async def finish(self, job_id: str, worker: str, *, ok: bool, result: Any = None,
                     error: str | None = None, traceback: str | None = None,
                     retry_at: float | None = None) -> Job | None:
        raise NotImplementedError

    async def finish_many(self, worker: str, items: Sequence[Finish]) -> list[Job | None]:
        """:meth:`finish` for several attempts of ``worker`` at once, the
        answers in the order of ``items``; a backend that can does it in one
        transaction (the worker finishes what ended together in one call).
        This default finishes them one by one."""
        return [await self.finish(item.job_id, worker, ok=item.ok, result=item.result,
                                  error=item.error, traceback=item.traceback,
                                  retry_at=item.retry_at) for item in items]

    async def wait_for_jobs(self, timeout: float) -> None:
        raise NotImplementedError

    async def get_job(self, job_id: str) -> Job | None:
        raise NotImplementedError

    async def list_jobs(self, *, status: str | None = None, task: str | None = None,
                        limit: int = 50, cursor: str | None = None) -> tuple[list[Job], str | None]:
        """Jobs newest first, with the next page's cursor (None: last page)."""
        raise NotImplementedError

    async def job_counts(self) -> dict[str, int]:
        """The number of jobs in each status (every status present, 0 included)."""
        raise NotImplementedError

    async def cancel(self, job_id: str) -> Job | None:
        raise NotImplementedError

    async def retry(self, job_id: str) -> Job | None:
        raise NotImplementedError

    # schedule claims

    async def claim_fire(self, claim: FireClaim, host: str) -> bool:
        raise NotImplementedError

    async def last_fire(self, schedule: str) -> int | None:
        raise NotImplementedError


BACKENDS: dict[str, str] = {
    "sqlite": "taskpack.store.sqlite:SQLiteStore",
    "postgresql": "taskpack.store.postgres:PostgresStore",
    "postgres": "taskpack.store.postgres:PostgresStore",
    "memory": "taskpack.store.memory:MemoryStore",
}
"""URL scheme → ``module:class``, imported on use."""


def backend_for(url: str) -> type[Store]:
    """The :class:`Store` class for ``url``'s scheme; :class:`StoreError`
    (naming the scheme, never the password) for an unknown one."""
    try:
        scheme = urlsplit(url).scheme
    except ValueError:
        scheme = ""
    target = BACKENDS.get(scheme)
    if target is None:
        from .urls import redact

        known = ", ".join(sorted({name + "://" for name in BACKENDS}))
        raise StoreError(f"store URL {redact(url)!r}: "
                         f"{'unknown scheme ' + scheme + '://' if scheme else 'no scheme'}"
                         f" (use {known})")
    module, _, name = target.partition(":")
    cls: type[Store] = getattr(importlib.import_module(module), name)
    return cls


def store_for(url: str, *, root: Path, history_limit: int = DEFAULT_HISTORY_LIMIT) -> Store:
    """A store for ``url`` (not opened yet: no I/O); :class:`StoreError` for
    a URL no backend takes."""
    return backend_for(url)(url, root=root, history_limit=history_limit)


def schedule_id(cron: str, timezone: str, tasks: Sequence[str]) -> str:
    """A schedule's stable id for fire claims: the same on every host that
    runs the same build, different when the cron, zone or tasks change (a
    changed schedule is a new schedule and never backfills)."""
    text = "\x1f".join((cron, timezone, *sorted(tasks)))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
