"""The SQLite store: one file, many processes on one host (see
:class:`taskpack.store.Store` for the contract).

``sqlite:///relative/path`` (relative to the ``root`` given: the project in
development, the working directory of a built server) or
``sqlite:////absolute/path``. The file and its folder are created by
:meth:`open`, in WAL mode (readers never block the writer) with
``synchronous=NORMAL`` (a power cut may lose the last runs, never corrupt
the file). Writers of other processes wait up to ``busy_timeout`` seconds
for the lock, so concurrent writers lose nothing; each write is one short
``BEGIN IMMEDIATE`` transaction, so job claims are serialised across
processes.

All SQLite work of a store happens on one daemon thread of its own, so the
event loop never blocks on the disk; run history is written by that thread
in batches from the shared :class:`~taskpack.store.buffer.RunBuffer`
(lingering for a full batch between calls, never instead of them), up to
:data:`_ROWS_PER_INSERT` runs per statement.

``?mode=ro`` opens the file read-only (``taskpack runs --db``): nothing is
ever written (no WAL switch, no tables created, no migration), and a file
that is not a taskpack store is a :class:`StoreError`. A run history file
of taskpack 0.1 (``.taskpack/history.sqlite``, one ``runs`` table) is
upgraded in place when opened read-write, and read as is read-only; a new
store whose folder holds such a ``history.sqlite`` imports its runs once,
when the store is created.

Not available under Pyodide (no ``sqlite3``): Cloudflare uses ``memory://``.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import functools
import os
import queue
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from . import (
    DEFAULT_HISTORY_LIMIT,
    DEFAULT_LEASE,
    JOB_STATUSES,
    FireClaim,
    Job,
    MigrationStatus,
    NewJob,
    RunPage,
    RunRecord,
    Store,
    StoreError,
    StoreUnavailable,
)
from .buffer import RunBuffer, clean_optional, json_text, logger
from .migrations import check_not_newer, latest, migrations
from .paging import NO_VALUE, Wakeup, decode_cursor, paged_query, split_page
from .rows import JOB_COLUMNS, RUN_COLUMNS, job_from_row, payload_text, run_from_row, run_values
from .urls import redact, sqlite_path

T = TypeVar("T")

BACKEND = "sqlite"
BUSY_TIMEOUT = 10.0
POLL = 1.0
"""Seconds between looks for jobs other processes enqueued."""
CLAIM_KEEP = 7 * 24 * 3600 * 1000
"""Fire claims older than this (ms) are pruned; each schedule's newest stays."""
LEGACY_FILE = "history.sqlite"
LEGACY_COLUMNS = RUN_COLUMNS[:10]

_JOBS = f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs"


_UNAVAILABLE = ("locked", "busy", "readonly", "read-only", "unable to open", "disk i/o",
                "disk is full")


def _classify(exc: BaseException, where: str) -> Exception:
    """A store exception for a sqlite3/OS error: a busy database or a disk
    that refuses (read-only folder, no space, a path under a regular file)
    is :class:`StoreUnavailable`; a file that is not a store, and anything
    else, :class:`StoreError`."""
    if isinstance(exc, StoreError):
        return exc
    text = str(exc) or type(exc).__name__
    if isinstance(exc, OSError):
        return StoreUnavailable(f"store {where}: {exc.strerror or text}")
    if isinstance(exc, sqlite3.OperationalError) and any(
            word in text.lower() for word in _UNAVAILABLE):
        return StoreUnavailable(f"store {where}: {text}")
    return StoreError(f"store {where}: {text}")


class _Thread:
    """One daemon thread running a store's SQLite calls in order. Before each
    call, and whenever it wakes, it calls ``idle`` (background work), which
    returns the seconds until it wants to be called again (None: when a
    call comes)."""

    def __init__(self, name: str, idle: Callable[[], float | None]) -> None:
        self.jobs: queue.SimpleQueue[tuple[Callable[[], Any], concurrent.futures.Future[Any]]
                                     | None] = queue.SimpleQueue()
        self.idle = idle
        self.thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self.thread.start()

    def submit(self, fn: Callable[[], T]) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self.jobs.put((fn, future))
        return future

    def wake(self) -> None:
        """Have ``idle`` called now (after the calls already queued)."""
        self.jobs.put((_nothing, concurrent.futures.Future()))

    def stop(self) -> None:
        self.jobs.put(None)

    def _loop(self) -> None:
        while True:
            wait: float | None = None
            try:
                wait = self.idle()
            except Exception:  # a bug; the thread must go on serving calls
                logger.exception("store thread %s: background work failed", self.thread.name)
            try:
                item = self.jobs.get(timeout=wait)
            except queue.Empty:
                continue
            if item is None:
                return
            fn, future = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as exc:  # handed to the caller; the thread lives on
                future.set_exception(exc)


def _nothing() -> None:
    return None


class SQLiteStore(Store):
    """``sqlite:///path``: see the module docstring."""

    scheme = "sqlite"

    def __init__(self, url: str, *, root: Path, history_limit: int = DEFAULT_HISTORY_LIMIT,
                 busy_timeout: float = BUSY_TIMEOUT) -> None:
        self.url = url
        self.path, params = sqlite_path(url, root)
        self.read_only = params.get("mode") == "ro"
        self.history_limit = history_limit
        self.busy_timeout = busy_timeout
        self.where = str(self.path)
        self._conn: sqlite3.Connection | None = None
        self._ready = False
        self._legacy = False  # read-only on a 0.1 history file
        self._open_error: str | None = None
        self._thread: _Thread | None = None
        self._pid = 0
        self._lock = threading.Lock()
        self._closed = False
        self.buffer = RunBuffer(BACKEND, self._kick)
        self._wakeup = Wakeup()
        _stores.add(self)

    # -- the thread ------------------------------------------------------------

    def _worker(self) -> _Thread:
        with self._lock:
            if self._thread is None or self._pid != os.getpid():
                self._conn = None  # a forked child never uses its parent's connection
                self._ready = False
                self._thread = _Thread(f"taskpack-store:{self.path.name}", self._write_due)
                self._pid = os.getpid()
            return self._thread

    async def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` on the store's thread, the store open."""
        def work() -> T:
            return fn(self._connection())

        return await asyncio.wrap_future(self._worker().submit(work))

    def _connection(self) -> sqlite3.Connection:
        """The open, migrated connection (on the store's thread only)."""
        if self._conn is not None and self._ready:
            return self._conn
        try:
            self._open_sync()
        except Exception as exc:
            error = _classify(exc, self.where)
            self._open_error = str(error)
            raise error from None
        self._open_error = None
        assert self._conn is not None
        return self._conn

    def _open_sync(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None
        if self.read_only:
            self._open_read_only()
            return
        for folder in self.path.parents:
            if folder.exists():
                if not folder.is_dir():
                    raise StoreUnavailable(f"store {self.where}: {folder} is not a folder")
                break
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.is_dir():
            raise StoreError(f"store {self.where}: is a folder; give the store file's path")
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None,
                               check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            self._retry_locked(lambda: conn.execute("PRAGMA journal_mode=WAL"))
            conn.execute("PRAGMA synchronous=NORMAL")
            self._migrate(conn)
        except BaseException:
            conn.close()
            raise
        self._conn, self._ready = conn, True

    def _retry_locked(self, fn: Callable[[], Any]) -> None:
        """Switching to WAL takes a lock that the busy handler does not wait
        for: retry while another process holds it."""
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                fn()
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def _open_read_only(self) -> None:
        if not self.path.is_file():
            raise StoreError(f"store {self.where}: no such file")
        conn = sqlite3.connect(self._read_only_uri(), uri=True, isolation_level=None,
                               timeout=self.busy_timeout, check_same_thread=False)
        try:
            tables = {row[0] for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "schema_version" in tables:
                check_not_newer(_version(conn), BACKEND, self.where)
                self._legacy = False
            elif "runs" in tables and set(LEGACY_COLUMNS) <= _columns(conn, "runs"):
                self._legacy = True
            else:
                raise StoreError(f"{self.where} is not a taskpack store (no taskpack tables)")
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StoreError(f"{self.where} is not a taskpack store: {exc}") from None
        except BaseException:
            conn.close()
            raise
        self._conn, self._ready = conn, True

    def _read_only_uri(self) -> str:
        """The URI that reads the file without writing anything: with no
        -wal file the database file is the whole store, read as immutable
        (``mode=ro`` alone would create the -wal and -shm files of a WAL
        database); with one, a writer is at work: read through its WAL (its
        -shm exists already)."""
        live = self.path.with_name(self.path.name + "-wal").exists()
        return f"file:{self.path}?mode=ro{'' if live else '&immutable=1'}"

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Apply pending migrations in one exclusive transaction (any number
        of processes may open the store at once: one migrates, the others
        wait for its lock and then find nothing to do)."""
        if self._current_version(conn) == latest(BACKEND):
            return
        self._retry_locked(lambda: conn.execute("BEGIN EXCLUSIVE"))
        try:
            tables = {row[0] for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
            legacy = "runs" in tables and "schema_version" not in tables
            if legacy:  # a 0.1 history file: keep its runs
                conn.execute("ALTER TABLE runs RENAME TO legacy_runs")
                for index in ("runs_task_seq",):
                    conn.execute(f"DROP INDEX IF EXISTS {index}")
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version "
                         "(version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)")
            current = _version(conn)
            check_not_newer(current, BACKEND, self.where)
            for migration in migrations(BACKEND)[current:]:
                for statement in migration.statements():
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_version VALUES (?, ?)",
                             (migration.version, time.time()))
            if legacy:
                _copy_legacy(conn, "legacy_runs")
                conn.execute("DROP TABLE legacy_runs")
            elif current == 0:
                self._import_neighbour(conn)
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise

    def _current_version(self, conn: sqlite3.Connection) -> int | None:
        try:
            version = _version(conn)
        except sqlite3.OperationalError:  # no schema_version table yet
            return None
        check_not_newer(version, BACKEND, self.where)
        return version

    def _import_neighbour(self, conn: sqlite3.Connection) -> None:
        """A new store next to a 0.1 ``history.sqlite`` takes its runs."""
        legacy = self.path.with_name(LEGACY_FILE)
        if legacy == self.path or not legacy.is_file():
            return
        try:
            conn.execute("ATTACH DATABASE ? AS legacy", (f"file:{legacy}?mode=ro",))
        except sqlite3.Error:
            return
        try:
            if set(LEGACY_COLUMNS) <= _columns(conn, "runs", "legacy"):
                _copy_legacy(conn, "legacy.runs")
        except sqlite3.DatabaseError:
            pass  # not a history file after all: nothing to keep
        finally:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("DETACH DATABASE legacy")

    # -- lifecycle -------------------------------------------------------------

    async def open(self) -> None:
        self._closed = False
        await self._call(lambda conn: None)

    async def close(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        if self._thread is None or self._pid != os.getpid():
            return
        await self.flush(timeout)
        thread, self._thread = self._thread, None

        def shut() -> None:
            self.buffer.write_due(self._write_runs, linger=0.0)  # recorded since the flush
            conn, self._conn, self._ready = self._conn, None, False
            if conn is not None:
                conn.close()

        future = thread.submit(shut)
        thread.stop()
        with contextlib.suppress(TimeoutError, sqlite3.Error):
            await asyncio.wait_for(asyncio.wrap_future(future),
                                   max(deadline - time.monotonic(), 0.1))

    async def health(self) -> dict[str, Any]:
        state = self.buffer.health()
        error = state["error"] or self._open_error
        return {"ok": error is None, "backend": BACKEND, "error": error,
                "lost_runs": state["lost_runs"]}

    async def migration_status(self) -> MigrationStatus:
        def status() -> MigrationStatus:
            if not self.path.is_file():
                current = 0
            else:
                conn = sqlite3.connect(self._read_only_uri(), uri=True,
                                       timeout=self.busy_timeout)
                try:
                    try:
                        current = _version(conn)
                    except sqlite3.OperationalError:
                        current = 0
                finally:
                    conn.close()
            known = latest(BACKEND)
            return MigrationStatus(current, known, tuple(range(current + 1, known + 1)))

        try:
            return await asyncio.wrap_future(self._worker().submit(status))
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"store {self.where}: {exc}") from None

    async def migrate(self) -> MigrationStatus:
        await self.open()
        return await self.migration_status()

    # -- run history -----------------------------------------------------------

    def record_run(self, run: RunRecord) -> None:
        self.buffer.add(run)

    def _kick(self) -> None:
        self._worker().wake()

    def _write_due(self) -> float | None:
        """The store thread's background work: write the runs that are due."""
        return self.buffer.write_due(self._write_runs)

    def _write_runs(self, batch: list[RunRecord]) -> None:
        try:
            conn = self._connection()
            if self.read_only:
                raise StoreError(f"store {self.where}: opened read-only")
            with _transaction(conn):
                for start in range(0, len(batch), _ROWS_PER_INSERT):
                    chunk = batch[start:start + _ROWS_PER_INSERT]
                    conn.execute(_insert_runs(len(chunk)),
                                 [value for run in chunk for value in run_values(run)])
                conn.executemany(
                    "DELETE FROM runs WHERE task = ?1 AND seq <= (SELECT seq FROM runs "
                    "WHERE task = ?1 ORDER BY seq DESC LIMIT 1 OFFSET ?2)",
                    [(task, self.history_limit) for task in sorted({run.task for run in batch})])
        except (sqlite3.Error, OSError) as exc:
            raise _classify(exc, self.where) from None

    async def flush(self, timeout: float = 5.0) -> bool:
        return await self.buffer.flush(timeout)

    async def list_runs(self, *, task: str | None = None, outcome: str | None = None,
                        trigger: str | None = None, limit: int = 20,
                        cursor: str | None = None) -> RunPage:
        below = decode_cursor(cursor)
        await self.buffer.flush(1.0)  # a process reads its own runs

        def query(conn: sqlite3.Connection) -> RunPage:
            sql, params = paged_query(f"SELECT seq, {', '.join(self._run_columns())} FROM runs", (
                ("task = ?", task), ("outcome = ?", outcome),
                ("trigger >= 'schedule:' AND trigger < 'schedule;'", NO_VALUE)
                if trigger == "schedule" else ("trigger = ?", trigger),
                ("seq < ?", below)), limit, "?")
            rows, next_cursor = split_page(conn.execute(sql, params).fetchall(), limit)
            return RunPage([self._run(row[1:]) for row in rows], next_cursor)

        return await self._read(query)

    async def get_run(self, run_id: str) -> RunRecord | None:
        await self.buffer.flush(1.0)

        def query(conn: sqlite3.Connection) -> RunRecord | None:
            row = conn.execute(f"SELECT {', '.join(self._run_columns())} FROM runs "
                               "WHERE id = ?", (run_id,)).fetchone()
            return None if row is None else self._run(row)

        return await self._read(query)

    async def last_runs(self) -> dict[str, RunRecord]:
        await self.buffer.flush(1.0)

        def query(conn: sqlite3.Connection) -> dict[str, RunRecord]:
            rows = conn.execute(
                f"SELECT {', '.join(self._run_columns())} FROM runs WHERE seq IN "
                "(SELECT MAX(seq) FROM runs GROUP BY task) ORDER BY task").fetchall()
            return {row[1]: self._run(row) for row in rows}

        return await self._read(query)

    def _run_columns(self) -> Sequence[str]:
        return LEGACY_COLUMNS if self._legacy else RUN_COLUMNS

    def _run(self, row: Sequence[Any]) -> RunRecord:
        return RunRecord(*row) if self._legacy else run_from_row(row)

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def guarded(conn: sqlite3.Connection) -> T:
            try:
                return fn(conn)
            except sqlite3.Error as exc:
                raise _classify(exc, self.where) from None

        return await self._call(guarded)

    # -- jobs ------------------------------------------------------------------

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn`` inside one ``BEGIN IMMEDIATE`` transaction."""
        def guarded(conn: sqlite3.Connection) -> T:
            if self.read_only:
                raise StoreError(f"store {self.where}: opened read-only")
            try:
                with _transaction(conn):
                    return fn(conn)
            except sqlite3.Error as exc:
                raise _classify(exc, self.where) from None

        return await self._call(guarded)

    async def enqueue(self, job: NewJob) -> Job:
        stored = await self._write(lambda conn: _enqueue(conn, job, time.time()))
        self._wakeup.notify()
        return stored

    async def claim(self, worker: str, limit: int, lease: float = DEFAULT_LEASE) -> list[Job]:
        def claim(conn: sqlite3.Connection) -> list[Job]:
            now = time.time()
            busy = {row[0] for row in conn.execute(
                "SELECT DISTINCT queue FROM jobs WHERE status = 'running' "
                "AND queue IS NOT NULL AND locked_until >= ?", (now,))}
            chosen: list[str] = []
            rows = conn.execute(
                "SELECT id, queue FROM jobs WHERE (status = 'pending' AND run_at <= ?1) "
                "OR (status = 'running' AND locked_until < ?1) ORDER BY priority, run_at, seq",
                (now,))
            for job_id, queue_name in rows:
                if len(chosen) >= limit:
                    break
                if queue_name is not None:
                    if queue_name in busy:
                        continue
                    busy.add(queue_name)
                chosen.append(job_id)
            conn.executemany(
                "UPDATE jobs SET status = 'running', attempts = attempts + 1, locked_by = ?, "
                "locked_until = ?, updated_at = ? WHERE id = ?",
                [(worker, now + lease, now, job_id) for job_id in chosen])
            return _jobs_by_id(conn, chosen)

        if limit < 1:
            return []
        return await self._write(claim)

    async def heartbeat(self, worker: str, job_ids: Sequence[str],
                        lease: float = DEFAULT_LEASE) -> set[str]:
        ids = list(job_ids)

        def beat(conn: sqlite3.Connection) -> set[str]:
            held: set[str] = set()
            until = time.time() + lease
            for job_id in ids:
                cur = conn.execute(
                    "UPDATE jobs SET locked_until = ? WHERE id = ? AND locked_by = ? "
                    "AND status = 'running'", (until, job_id, worker))
                if cur.rowcount:
                    held.add(job_id)
            return held

        if not ids:
            return set()
        return await self._write(beat)

    async def finish(self, job_id: str, worker: str, *, ok: bool, result: Any = None,
                     error: str | None = None, traceback: str | None = None,
                     retry_at: float | None = None) -> Job | None:
        def finish(conn: sqlite3.Connection) -> Job | None:
            row = conn.execute("SELECT status FROM jobs WHERE id = ? AND locked_by = ? "
                               "AND status IN ('running', 'cancelled')",
                               (job_id, worker)).fetchone()
            if row is None:
                return None
            now = time.time()
            if ok:
                conn.execute(
                    "UPDATE jobs SET status = CASE status WHEN 'running' THEN 'succeeded' "
                    "ELSE status END, result = ?, locked_by = NULL, locked_until = NULL, "
                    "updated_at = ? WHERE id = ?", (json_text(result), now, job_id))
            else:
                status = row[0]
                run_at_sql = ""
                params: list[Any] = [clean_optional(error), clean_optional(traceback), now]
                if status == "running":
                    status = "pending" if retry_at is not None else "failed"
                    if retry_at is not None:
                        run_at_sql = ", run_at = ?"
                        params.append(retry_at)
                conn.execute(
                    f"UPDATE jobs SET status = '{status}', last_error = ?, traceback = ?, "
                    f"locked_by = NULL, locked_until = NULL, updated_at = ?{run_at_sql} "
                    "WHERE id = ?", (*params, job_id))
            return _jobs_by_id(conn, [job_id])[0]

        done = await self._write(finish)
        if done is not None and (done.status == "pending" or done.queue is not None):
            self._wakeup.notify()
        return done

    async def wait_for_jobs(self, timeout: float) -> None:
        await self._wakeup.wait(min(timeout, POLL))

    async def get_job(self, job_id: str) -> Job | None:
        found = await self._read(lambda conn: _jobs_by_id(conn, [job_id]))
        return found[0] if found else None

    async def list_jobs(self, *, status: str | None = None, task: str | None = None,
                        limit: int = 50, cursor: str | None = None
                        ) -> tuple[list[Job], str | None]:
        below = decode_cursor(cursor)

        def query(conn: sqlite3.Connection) -> tuple[list[Job], str | None]:
            sql, params = paged_query(f"SELECT seq, {', '.join(JOB_COLUMNS)} FROM jobs", (
                ("status = ?", status), ("task = ?", task), ("seq < ?", below)), limit, "?")
            rows, next_cursor = split_page(conn.execute(sql, params).fetchall(), limit)
            return [job_from_row(row[1:]) for row in rows], next_cursor

        return await self._read(query)

    async def job_counts(self) -> dict[str, int]:
        def query(conn: sqlite3.Connection) -> dict[str, int]:
            counts: dict[str, int] = dict.fromkeys(JOB_STATUSES, 0)
            for status, count in conn.execute(
                    "SELECT status, COUNT(*) FROM jobs GROUP BY status"):
                counts[status] = count
            return counts

        return await self._read(query)

    async def cancel(self, job_id: str) -> Job | None:
        def cancel(conn: sqlite3.Connection) -> Job | None:
            conn.execute("UPDATE jobs SET status = 'cancelled', updated_at = ? WHERE id = ? "
                         "AND status IN ('pending', 'running')", (time.time(), job_id))
            found = _jobs_by_id(conn, [job_id])
            return found[0] if found else None

        return await self._write(cancel)

    async def retry(self, job_id: str) -> Job | None:
        def retry(conn: sqlite3.Connection) -> Job | None:
            now = time.time()
            conn.execute("UPDATE jobs SET status = 'pending', attempts = 0, run_at = ?, "
                         "updated_at = ?, locked_by = NULL, locked_until = NULL WHERE id = ? "
                         "AND status IN ('failed', 'cancelled')", (now, now, job_id))
            found = _jobs_by_id(conn, [job_id])
            return found[0] if found else None

        job = await self._write(retry)
        if job is not None and job.status == "pending":
            self._wakeup.notify()
        return job

    # -- schedule claims -------------------------------------------------------

    async def claim_fire(self, claim: FireClaim, host: str) -> bool:
        def insert(conn: sqlite3.Connection) -> bool:
            now = time.time()
            cur = conn.execute("INSERT OR IGNORE INTO fire_claims VALUES (?, ?, ?, ?)",
                               (claim.schedule, claim.fire_ms, host, now))
            if not cur.rowcount:
                return False
            for job in claim.jobs:
                _enqueue(conn, job, now)
            conn.execute("DELETE FROM fire_claims WHERE schedule = ? AND fire_ms < ?",
                         (claim.schedule, claim.fire_ms - CLAIM_KEEP))
            return True

        won = await self._write(insert)
        if won and claim.jobs:
            self._wakeup.notify()
        return won

    async def last_fire(self, schedule: str) -> int | None:
        def query(conn: sqlite3.Connection) -> int | None:
            row = conn.execute("SELECT MAX(fire_ms) FROM fire_claims WHERE schedule = ?",
                               (schedule,)).fetchone()
            return None if row is None or row[0] is None else int(row[0])

        return await self._read(query)

    def __repr__(self) -> str:
        return f"SQLiteStore({redact(self.url)!r})"


# -- SQL helpers -----------------------------------------------------------------


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


_ROWS_PER_INSERT = 999 // len(RUN_COLUMNS)
"""Runs per INSERT statement (SQLite before 3.32 takes 999 parameters at
most). One statement for many rows, rather than ``executemany``, lets the
writer thread release the GIL once for all of them instead of once per row,
so it hands the GIL back and forth with the event loop far less often."""


@functools.lru_cache(maxsize=_ROWS_PER_INSERT)
def _insert_runs(rows: int) -> str:
    """The INSERT of ``rows`` runs (the SQL text, made once per size)."""
    row = f"({', '.join('?' * len(RUN_COLUMNS))})"
    return (f"INSERT OR IGNORE INTO runs ({', '.join(RUN_COLUMNS)}) "
            f"VALUES {', '.join([row] * rows)}")


def _version(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def _columns(conn: sqlite3.Connection, table: str, schema: str = "main") -> set[str]:
    return {row[1] for row in conn.execute(f"PRAGMA {schema}.table_info({table})")}


def _copy_legacy(conn: sqlite3.Connection, table: str) -> None:
    columns = ", ".join(LEGACY_COLUMNS)
    conn.execute(f"INSERT OR IGNORE INTO runs ({columns}) SELECT {columns} FROM {table} "
                 "ORDER BY seq")


def _jobs_by_id(conn: sqlite3.Connection, ids: Sequence[str]) -> list[Job]:
    if not ids:
        return []
    rows = conn.execute(f"{_JOBS} WHERE id IN ({', '.join('?' * len(ids))})",
                        list(ids)).fetchall()
    by_id = {row[0]: job_from_row(row) for row in rows}
    return [by_id[job_id] for job_id in ids if job_id in by_id]


def _enqueue(conn: sqlite3.Connection, job: NewJob, now: float) -> Job:
    if job.key is not None:
        row = conn.execute("SELECT id FROM jobs WHERE key = ? AND status = 'pending'",
                           (job.key,)).fetchone()
        if row is not None:
            if job.key_mode == "replace":
                conn.execute(
                    "UPDATE jobs SET task = ?, payload = ?, run_at = ?, priority = ?, queue = ?, "
                    "max_attempts = ?, trigger = ?, updated_at = ? WHERE id = ?",
                    (job.task, payload_text(job), job.run_at, job.priority, job.queue,
                     job.max_attempts, job.trigger, now, row[0]))
            return _jobs_by_id(conn, [row[0]])[0]
    job_id = os.urandom(16).hex()
    conn.execute(
        "INSERT INTO jobs (id, task, payload, status, run_at, created_at, updated_at, "
        "max_attempts, queue, key, priority, trigger) "
        "VALUES (?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?)",
        (job_id, job.task, payload_text(job), job.run_at, now, now, job.max_attempts,
         job.queue, job.key, job.priority, job.trigger))
    return _jobs_by_id(conn, [job_id])[0]


# At interpreter exit, give each store's writer a moment to store what it holds.
_stores: weakref.WeakSet[SQLiteStore] = weakref.WeakSet()


@atexit.register
def _store_buffered_runs(bound: float = 2.0) -> None:
    deadline = time.monotonic() + bound
    for store in list(_stores):
        if store._pid != os.getpid():
            continue
        while store.buffer.pending and time.monotonic() < deadline:
            time.sleep(0.01)
