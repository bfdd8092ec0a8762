"""The PostgreSQL store: many processes on many hosts (see
:class:`taskpack.store.Store` for the contract).

Any libpq URL: ``postgresql://user:password@host:5432/db``,
``postgresql:///db?host=/var/run/postgresql`` (a Unix socket), ``postgres://``.
Tables are prefixed ``taskpack_`` so the store can share an application's
database. Needs ``psycopg`` 3 and ``psycopg_pool`` (``taskpack[postgres]``;
a bundle gets them with ``[store] driver = "postgres"``).

* Connections come from an async pool opened by :meth:`open`, which first
  connects once on its own to apply migrations under
  ``pg_advisory_lock`` (any number of processes may open the store at
  once). A URL that names no reachable server, or a login the server
  refuses, is a :class:`StoreError` there, naming the host, never the
  password.
* Jobs are claimed with ``SELECT … FOR UPDATE SKIP LOCKED`` in (priority,
  run_at, id) order; a job of a named queue also takes a transaction-level
  advisory lock on its queue and checks that no job of that queue is
  running, so a named queue runs one job at a time across every host.
  Leases that expired go back to ``pending`` at the next claim (their
  worker died) and are claimed again.
* Enqueues, retries and fire claims send ``NOTIFY taskpack_jobs`` in their
  transaction; :meth:`wait_for_jobs` listens on a connection of its own
  (opened on first use, reconnected with backoff), so a worker wakes within
  milliseconds of an enqueue on any host.
* Run history goes through the shared :class:`~taskpack.store.buffer.RunBuffer`
  and a writer task: batches of up to 500 runs in one transaction, one
  JSON parameter per 100 runs (:func:`~taskpack.store.rows.runs_json`);
  while the server is unreachable the batch is kept and retried with
  backoff.
* A connection lost mid-call (PostgreSQL restarting) is a
  :class:`StoreUnavailable`; callers that loop retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from . import (
    DEFAULT_HISTORY_LIMIT,
    DEFAULT_LEASE,
    JOB_STATUSES,
    Finish,
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
from .buffer import RunBuffer, backoff, clean_optional, json_text
from .migrations import check_not_newer, latest, migrations
from .paging import NO_VALUE, Wakeup, decode_cursor, paged_query, split_page
from .rows import JOB_COLUMNS, RUN_COLUMNS, job_from_row, payload_text, run_from_row, runs_json
from .urls import describe, redact

try:
    import psycopg
    import psycopg_pool
except ImportError:  # pragma: no cover - exercised where the driver is missing
    raise StoreError("a postgresql:// store needs the PostgreSQL driver: pip install "
                     "'taskpack[postgres]' (in a bundle: [store] driver = \"postgres\", "
                     "then rebuild)") from None

T = TypeVar("T")

logger = logging.getLogger("taskpack.store")

BACKEND = "postgres"
POOL_NAME = "taskpack-store"
CHANNEL = "taskpack_jobs"
MIGRATION_LOCK = 0x7461736B7061636B  # "taskpack": the advisory lock of migrations
CONNECT_TIMEOUT = 5


class _ReconnectNoise(logging.Filter):
    """Demotes to DEBUG what psycopg's pool logs on every reconnect attempt of
    our pool (and on each dead connection it discards) while PostgreSQL is
    down: the store logs the outage itself, once per state change."""

    TEMPLATES = ("error connecting in %r: %s",
                 "reconnection attempt in pool %r failed after %s sec")

    def filter(self, record: logging.LogRecord) -> bool:
        ours = (record.msg in self.TEMPLATES and isinstance(record.args, tuple)
                and record.args[:1] == (POOL_NAME,))
        if ours or record.msg == "discarding closed connection: %s":
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


logging.getLogger("psycopg.pool").addFilter(_ReconnectNoise())
POOL_WAIT = 3.0
"""Seconds a call waits for a pooled connection (a server that is down
makes calls :class:`StoreUnavailable` after this)."""
POOL_SIZE = 10
CLAIM_KEEP = 7 * 24 * 3600 * 1000
"""Fire claims older than this (ms) are pruned; each schedule's newest stays."""
POLL = 1.0
"""Seconds between looks for due jobs while the listener is down."""
HEALTH_TIMEOUT = 1.5

_JOBS = f"SELECT {', '.join(JOB_COLUMNS)} FROM taskpack_jobs"
_RUN_COLS = ", ".join(RUN_COLUMNS)

# Login problems the user must fix (not worth retrying).
_REFUSED = ("password authentication failed", "no password supplied", "does not exist",
            "not permitted to log in", "pg_hba.conf", "permission denied",
            "authentication failed", "failed to resolve host", "invalid connection option",
            "invalid dsn", "missing \"=\"", "invalid uri")


class _Broken(StoreUnavailable):
    """A pooled connection broke during a call."""


class PostgresStore(Store):
    """``postgresql://…``: see the module docstring."""

    scheme = "postgresql"

    def __init__(self, url: str, *, root: Path | None = None,
                 history_limit: int = DEFAULT_HISTORY_LIMIT, pool_size: int = POOL_SIZE) -> None:
        self.url = url
        self.where = describe(url)
        self.history_limit = history_limit
        self.pool_size = pool_size
        self._pool: psycopg_pool.AsyncConnectionPool[Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._writer: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._listening = False
        self._error: str | None = None
        self._opening: asyncio.Lock | None = None
        self._wakeup = Wakeup()
        self.buffer = RunBuffer(BACKEND, self._kick)

    # -- connections -----------------------------------------------------------

    def _fail(self, exc: BaseException, doing: str = "") -> Exception:
        """A store exception for a driver error (see the module docstring)."""
        if isinstance(exc, StoreError):
            return exc
        text = " ".join(str(exc).split()) or type(exc).__name__
        text = text.replace("connection failed: ", "")
        prefix = f"store {self.where}: {doing + ': ' if doing else ''}"
        if isinstance(exc, psycopg_pool.PoolTimeout):
            return StoreUnavailable(f"{prefix}no connection within the pool's timeout")
        if isinstance(exc, (psycopg.OperationalError, OSError, TimeoutError)):
            if any(word in text.lower() for word in _REFUSED):
                return StoreError(prefix + text)
            return StoreUnavailable(prefix + text)
        if isinstance(exc, psycopg.ProgrammingError) and "invalid" in text.lower():
            return StoreError(prefix + text)
        return StoreError(prefix + text)

    async def _connect(self, **kwargs: Any) -> psycopg.AsyncConnection[Any]:
        try:
            return await psycopg.AsyncConnection.connect(
                self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT, **kwargs)
        except Exception as exc:
            raise self._fail(exc, "cannot connect") from None

    @contextlib.asynccontextmanager
    async def _conn(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A pooled connection (the store opened first if it is not)."""
        if self._pool is None:
            await self.open()
        assert self._pool is not None
        try:
            async with self._pool.connection(timeout=POOL_WAIT) as conn:
                try:
                    yield conn
                except psycopg.OperationalError as exc:
                    if conn.broken:  # it died under us: worth one more try
                        raise _Broken(str(self._fail(exc))) from None
                    raise
        except (StoreError, asyncio.CancelledError):
            raise
        except (psycopg.Error, psycopg_pool.PoolTimeout, OSError) as exc:
            raise self._fail(exc) from None

    async def _tx(self, fn: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]) -> T:
        """``fn(conn)`` in one transaction; retried once on a pooled
        connection that had broken (a server restart leaves dead ones in
        the pool), never after waiting for the pool in vain."""
        try:
            async with self._conn() as conn, conn.transaction():
                return await fn(conn)
        except _Broken:
            pass
        async with self._conn() as conn, conn.transaction():
            return await fn(conn)

    # -- lifecycle -------------------------------------------------------------

    async def open(self) -> None:
        if self._pool is not None:
            return
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:  # calls that open it lazily at once: one pool
            if self._pool is None:
                await self._open()

    async def _open(self) -> None:
        await self._migrate()
        pool: psycopg_pool.AsyncConnectionPool[Any] = psycopg_pool.AsyncConnectionPool(
            self.url, min_size=1, max_size=self.pool_size, open=False,
            kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT},
            name=POOL_NAME)
        try:
            await pool.open(wait=True, timeout=CONNECT_TIMEOUT * 2)
        except Exception as exc:
            with contextlib.suppress(Exception):
                await pool.close()
            raise self._fail(exc, "cannot connect") from None
        self._pool = pool
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._writer = asyncio.create_task(self.buffer.drain_async(self._write_runs, self._wake),
                                           name="taskpack-store-writer")
        if self.buffer.pending:
            self._wake.set()
        self._error = None

    async def close(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        if self._pool is not None:
            await self.flush(timeout)
        for task in (self._writer, self._listener):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(task, max(deadline - time.monotonic(), 0.1))
        self._writer = self._listener = None
        self._listening = False
        self._loop = self._wake = None  # record_run buffers until the next open
        self._opening = None
        pool, self._pool = self._pool, None
        if pool is not None:
            with contextlib.suppress(Exception):
                await pool.close(timeout=max(deadline - time.monotonic(), 0.1))

    async def health(self) -> dict[str, Any]:
        state = self.buffer.health()
        error = state["error"] or self._error
        if self._pool is None:
            error = error or "not open"
        else:
            try:
                await asyncio.wait_for(self._ping(), HEALTH_TIMEOUT)
            except TimeoutError:
                error = f"store {self.where}: no answer within {HEALTH_TIMEOUT}s"
            except Exception as exc:
                error = str(self._fail(exc))
        return {"ok": error is None, "backend": BACKEND, "error": error,
                "lost_runs": state["lost_runs"]}

    async def _ping(self) -> None:
        async with self._conn() as conn:
            await conn.execute("SELECT 1")

    async def migration_status(self) -> MigrationStatus:
        conn = await self._connect()
        try:
            current = await _version(conn)
        except psycopg.Error as exc:
            raise self._fail(exc) from None
        finally:
            await conn.close()
        known = latest(BACKEND)
        return MigrationStatus(current, known, tuple(range(current + 1, known + 1)))

    async def migrate(self) -> MigrationStatus:
        await self._migrate()
        return await self.migration_status()

    async def _migrate(self) -> None:
        """Apply pending migrations, one transaction each, under an advisory
        lock held by this connection (other processes wait for it)."""
        conn = await self._connect()
        try:
            current = await _version(conn)
            check_not_newer(current, BACKEND, self.where)
            if current == latest(BACKEND):
                return
            await conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
            try:
                await conn.execute("CREATE TABLE IF NOT EXISTS taskpack_schema_version "
                                   "(version INTEGER PRIMARY KEY, "
                                   "applied_at DOUBLE PRECISION NOT NULL)")
                current = await _version(conn)
                check_not_newer(current, BACKEND, self.where)
                for migration in migrations(BACKEND)[current:]:
                    async with conn.transaction():
                        for statement in migration.statements():
                            await conn.execute(statement.encode())
                        await conn.execute("INSERT INTO taskpack_schema_version VALUES (%s, %s)",
                                           (migration.version, time.time()))
                    logger.info("store %s: applied migration %s", self.where, migration.name)
            finally:
                await conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
        except psycopg.Error as exc:
            raise self._fail(exc, "migrating") from None
        finally:
            await conn.close()

    # -- run history -----------------------------------------------------------

    def record_run(self, run: RunRecord) -> None:
        self.buffer.add(run)

    def _kick(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is None or wake is None:
            return  # not open yet: open() starts the writer
        with contextlib.suppress(RuntimeError):  # the loop is closed
            loop.call_soon_threadsafe(wake.set)

    async def _write_runs(self, batch: list[RunRecord]) -> None:
        tasks = sorted({run.task for run in batch})

        async def write(conn: psycopg.AsyncConnection[Any]) -> None:
            async with conn.cursor() as cur:
                for start in range(0, len(batch), _ROWS_PER_INSERT):  # one statement each
                    await cur.execute(_INSERT_RUNS,
                                      (runs_json(batch[start:start + _ROWS_PER_INSERT]),))
                await cur.executemany(
                    "DELETE FROM taskpack_runs WHERE task = %s AND seq <= (SELECT seq FROM "
                    "taskpack_runs WHERE task = %s ORDER BY seq DESC OFFSET %s LIMIT 1)",
                    [(task, task, self.history_limit) for task in tasks])

        await self._tx(write)

    async def flush(self, timeout: float = 5.0) -> bool:
        return await self.buffer.flush(timeout)

    async def list_runs(self, *, task: str | None = None, outcome: str | None = None,
                        trigger: str | None = None, limit: int = 20,
                        cursor: str | None = None) -> RunPage:
        below = decode_cursor(cursor)
        await self.buffer.flush(1.0)  # a process reads its own runs
        sql, params = paged_query(f"SELECT seq, {_RUN_COLS} FROM taskpack_runs", (
            ("task = %s", task), ("outcome = %s", outcome),
            ("trigger LIKE 'schedule:%%'", NO_VALUE) if trigger == "schedule"
            else ("trigger = %s", trigger),
            ("seq < %s", below)), limit, "%s")
        rows, next_cursor = split_page(await self._fetch(sql, params), limit)
        return RunPage([run_from_row(row[1:]) for row in rows], next_cursor)

    async def get_run(self, run_id: str) -> RunRecord | None:
        rows = await self._fetch(f"SELECT {_RUN_COLS} FROM taskpack_runs WHERE id = %s",
                                 (run_id,))
        return run_from_row(rows[0]) if rows else None

    async def last_runs(self) -> dict[str, RunRecord]:
        await self.buffer.flush(1.0)
        rows = await self._fetch(
            f"SELECT DISTINCT ON (task) {_RUN_COLS} FROM taskpack_runs "
            "ORDER BY task, seq DESC")
        return {row[1]: run_from_row(row) for row in rows}

    async def _autocommit(self, fn: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]) -> T:
        """``fn(conn)`` outside a transaction, for one statement (atomic on
        its own: one round trip, no BEGIN/COMMIT); retried once like :meth:`_tx`."""
        try:
            async with self._conn() as conn:
                return await fn(conn)
        except _Broken:
            pass
        async with self._conn() as conn:
            return await fn(conn)

    async def _statement(self, sql: str, params: Any) -> list[Any]:
        """The rows of one statement run with :meth:`_autocommit`."""
        async def run(conn: psycopg.AsyncConnection[Any]) -> list[Any]:
            cur = await conn.execute(sql.encode(), params)
            return await cur.fetchall()

        return await self._autocommit(run)

    async def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        async def fetch(conn: psycopg.AsyncConnection[Any]) -> list[Any]:
            cur = await conn.execute(sql.encode(), params)
            return await cur.fetchall()

        return await self._tx(fetch)

    # -- jobs ------------------------------------------------------------------

    async def enqueue(self, job: NewJob) -> Job:
        async def insert(conn: psycopg.AsyncConnection[Any]) -> Job:
            stored = await _enqueue(conn, job, time.time())
            await conn.execute(f"NOTIFY {CHANNEL}")
            return stored

        stored = await self._tx(insert)
        self._wakeup.notify()
        return stored

    async def claim(self, worker: str, limit: int, lease: float = DEFAULT_LEASE) -> list[Job]:
        """One statement (no transaction round trips) claims the due jobs of
        no named queue among the first ``limit``; when it saw a due job of a
        named queue the full claim (:meth:`_claim_checked`) runs for the
        slots left, and when it saw a running job whose lease ran out it
        claims nothing and the full claim runs for all of them (the lost job
        goes back to pending and is claimed in its order)."""
        if limit < 1:
            return []
        now = time.time()
        rows = await self._statement(_FAST_CLAIM, {"now": now, "limit": limit,
                                                   "worker": worker, "until": now + lease})
        fast = [job_from_row(row[1:]) for row in rows if row[1] is not None]
        if not rows or not rows[0][0]:  # no queued candidate, no lost lease
            return fast
        checked = await self._claim_checked(worker, limit - len(fast), lease)
        return sorted(fast + checked, key=lambda job: (job.priority, job.run_at))  # stable

    async def _claim_checked(self, worker: str, limit: int, lease: float) -> list[Job]:
        """The full claim in one transaction: leases that ran out go back to
        ``pending``, then up to ``limit`` due jobs, a named queue's only if
        no job of it runs (its advisory lock held until commit)."""

        async def claim(conn: psycopg.AsyncConnection[Any]) -> list[Job]:
            now = time.time()
            # Leases that ran out: their worker died; back to pending, claimed below.
            await conn.execute(
                "UPDATE taskpack_jobs SET status = 'pending', locked_by = NULL, "
                "locked_until = NULL, updated_at = %s WHERE status = 'running' "
                "AND locked_until < %s", (now, now))
            if limit < 1:
                return []
            cur = await conn.execute(
                "SELECT id, queue FROM taskpack_jobs WHERE status = 'pending' AND run_at <= %s "
                "ORDER BY priority, run_at, seq LIMIT %s FOR UPDATE SKIP LOCKED",
                (now, limit + 100))
            chosen: list[str] = []
            queues: set[str] = set()
            for job_id, queue_name in await cur.fetchall():
                if len(chosen) >= limit:
                    break
                if queue_name is not None:
                    if queue_name in queues or not await _queue_free(conn, queue_name, now):
                        continue
                    queues.add(queue_name)
                chosen.append(job_id)
            if not chosen:
                return []
            cur = await conn.execute(
                "UPDATE taskpack_jobs SET status = 'running', attempts = attempts + 1, "
                "locked_by = %s, locked_until = %s, updated_at = %s WHERE id = ANY(%s) "
                f"RETURNING {', '.join(JOB_COLUMNS)}", (worker, now + lease, now, chosen))
            by_id = {row[0]: job_from_row(row) for row in await cur.fetchall()}
            return [by_id[job_id] for job_id in chosen if job_id in by_id]

        return await self._tx(claim)

    async def heartbeat(self, worker: str, job_ids: Sequence[str],
                        lease: float = DEFAULT_LEASE) -> set[str]:
        if not job_ids:
            return set()
        rows = await self._fetch(
            "UPDATE taskpack_jobs SET locked_until = %s WHERE id = ANY(%s) AND locked_by = %s "
            "AND status = 'running' RETURNING id", (time.time() + lease, list(job_ids), worker))
        return {row[0] for row in rows}

    async def finish(self, job_id: str, worker: str, *, ok: bool, result: Any = None,
                     error: str | None = None, traceback: str | None = None,
                     retry_at: float | None = None) -> Job | None:
        (done,) = await self.finish_many(worker, [Finish(job_id, ok, result, error, traceback,
                                                         retry_at)])
        return done

    async def finish_many(self, worker: str, items: Sequence[Finish]) -> list[Job | None]:
        """Every item in one transaction (a worker finishes what ended
        together at once): the successes in one statement (run alone when
        every item succeeded), each failure in two."""
        if not items:
            return []

        async def finish(conn: psycopg.AsyncConnection[Any]) -> list[Job | None]:
            succeeded = await _succeed(conn, worker, [item for item in items if item.ok])
            return [succeeded.get(item.job_id) if item.ok else await _finish(conn, worker, item)
                    for item in items]

        if all(item.ok for item in items):  # one statement: no transaction needed
            succeeded = await self._autocommit(lambda conn: _succeed(conn, worker, items))
            done = [succeeded.get(item.job_id) for item in items]
        else:
            done = await self._tx(finish)
        if any(job is not None and job.queue is not None for job in done):
            await self._notify()  # their queues are free again
        return done

    async def _notify(self) -> None:
        async def notify(conn: psycopg.AsyncConnection[Any]) -> None:
            await conn.execute(f"NOTIFY {CHANNEL}")

        with contextlib.suppress(StoreError):
            await self._tx(notify)

    async def wait_for_jobs(self, timeout: float) -> None:
        if self._listener is None or self._listener.done():
            self._listener = asyncio.create_task(self._listen(), name="taskpack-store-listen")
        await self._wakeup.wait(timeout if self._listening else min(timeout, POLL))

    async def _listen(self) -> None:
        """LISTEN on a connection of its own; reconnect with backoff."""
        tries = 0
        while True:
            try:
                conn = await self._connect()
                try:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self._listening, tries = True, 0
                    self._wakeup.notify()  # what was enqueued while not listening
                    async for _ in conn.notifies():
                        self._wakeup.notify()
                finally:
                    self._listening = False
                    with contextlib.suppress(Exception):
                        await conn.close()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                tries += 1
                if tries == 1:
                    logger.warning("%s; job wake-ups fall back to polling until it is back",
                                   self._fail(exc, "listening for jobs"))
                await asyncio.sleep(backoff(tries, cap=5.0))

    async def get_job(self, job_id: str) -> Job | None:
        rows = await self._fetch(f"{_JOBS} WHERE id = %s", (job_id,))
        return job_from_row(rows[0]) if rows else None

    async def list_jobs(self, *, status: str | None = None, task: str | None = None,
                        limit: int = 50, cursor: str | None = None
                        ) -> tuple[list[Job], str | None]:
        sql, params = paged_query(f"SELECT seq, {', '.join(JOB_COLUMNS)} FROM taskpack_jobs", (
            ("status = %s", status), ("task = %s", task), ("seq < %s", decode_cursor(cursor))),
            limit, "%s")
        rows, next_cursor = split_page(await self._fetch(sql, params), limit)
        return [job_from_row(row[1:]) for row in rows], next_cursor

    async def job_counts(self) -> dict[str, int]:
        counts: dict[str, int] = dict.fromkeys(JOB_STATUSES, 0)
        for status, count in await self._fetch(
                "SELECT status, COUNT(*) FROM taskpack_jobs GROUP BY status"):
            counts[status] = int(count)
        return counts

    async def cancel(self, job_id: str) -> Job | None:
        async def cancel(conn: psycopg.AsyncConnection[Any]) -> Job | None:
            await conn.execute(
                "UPDATE taskpack_jobs SET status = 'cancelled', updated_at = %s WHERE id = %s "
                "AND status IN ('pending', 'running')", (time.time(), job_id))
            return await _job(conn, job_id)

        return await self._tx(cancel)

    async def retry(self, job_id: str) -> Job | None:
        async def retry(conn: psycopg.AsyncConnection[Any]) -> Job | None:
            now = time.time()
            cur = await conn.execute(
                "UPDATE taskpack_jobs SET status = 'pending', attempts = 0, run_at = %s, "
                "updated_at = %s, locked_by = NULL, locked_until = NULL WHERE id = %s "
                "AND status IN ('failed', 'cancelled')", (now, now, job_id))
            if cur.rowcount:
                await conn.execute(f"NOTIFY {CHANNEL}")
            return await _job(conn, job_id)

        job = await self._tx(retry)
        if job is not None and job.status == "pending":
            self._wakeup.notify()
        return job

    # -- schedule claims -------------------------------------------------------

    async def claim_fire(self, claim: FireClaim, host: str) -> bool:
        async def insert(conn: psycopg.AsyncConnection[Any]) -> bool:
            now = time.time()
            cur = await conn.execute(
                "INSERT INTO taskpack_fire_claims VALUES (%s, %s, %s, %s) "
                "ON CONFLICT DO NOTHING", (claim.schedule, claim.fire_ms, host, now))
            if not cur.rowcount:
                return False
            for job in claim.jobs:
                await _enqueue(conn, job, now)
            if claim.jobs:
                await conn.execute(f"NOTIFY {CHANNEL}")
            await conn.execute(
                "DELETE FROM taskpack_fire_claims WHERE schedule = %s AND fire_ms < %s",
                (claim.schedule, claim.fire_ms - CLAIM_KEEP))
            return True

        won = await self._tx(insert)
        if won and claim.jobs:
            self._wakeup.notify()
        return won

    async def last_fire(self, schedule: str) -> int | None:
        rows = await self._fetch(
            "SELECT MAX(fire_ms) FROM taskpack_fire_claims WHERE schedule = %s", (schedule,))
        return None if not rows or rows[0][0] is None else int(rows[0][0])

    def __repr__(self) -> str:
        return f"PostgresStore({redact(self.url)!r})"


# -- SQL helpers -----------------------------------------------------------------

_ROWS_PER_INSERT = 100
"""Runs per INSERT: one parameter, their JSON (:func:`runs_json`), short
enough to be encoded at once (:data:`~taskpack.store.buffer.MAX_JSON`) for
runs of a few hundred characters. A short constant statement costs psycopg
little, where a multi-row VALUES statement of thousands of parameters made
it parse the SQL text anew on the event loop for every batch."""

_RUN_TYPES = {"started_at": "double precision", "finished_at": "double precision",
              "duration_ms": "double precision", "attempts": "integer"}


def _run_column(index: int, name: str) -> str:
    """Column ``name`` of the run ``r`` (a JSON array): payload and result as
    their JSON text (a ``json`` value keeps its text as sent; NULL for
    None), the others as values."""
    if name in ("payload", "result"):
        return f"NULLIF((r -> {index})::text, 'null')"
    return f"(r ->> {index})::{_RUN_TYPES.get(name, 'text')}"


_INSERT_RUNS = (
    f"INSERT INTO taskpack_runs ({_RUN_COLS}) "
    f"SELECT {', '.join(_run_column(i, name) for i, name in enumerate(RUN_COLUMNS))} "
    "FROM json_array_elements(%s::json) WITH ORDINALITY AS runs(r, n) ORDER BY n "
    "ON CONFLICT (id) DO NOTHING")

_FAST_CLAIM = (
    # lost: a running job's lease ran out (then nothing is claimed here: the
    # full claim puts it back to pending and claims in order); cand: the
    # first `limit` due jobs (locked, skipping others' locks); claimed: those
    # of no named queue, now running; every row carries `blocked`: whether
    # the full claim must run.
    "WITH lost AS (SELECT EXISTS (SELECT 1 FROM taskpack_jobs WHERE status = 'running' "
    "AND locked_until < %(now)s) AS seen), "
    "cand AS (SELECT id, queue, seq FROM taskpack_jobs WHERE status = 'pending' "
    "AND run_at <= %(now)s ORDER BY priority, run_at, seq LIMIT %(limit)s "
    "FOR UPDATE SKIP LOCKED), "
    "claimed AS (UPDATE taskpack_jobs AS j SET status = 'running', attempts = j.attempts + 1, "
    "locked_by = %(worker)s, locked_until = %(until)s, updated_at = %(now)s FROM cand "
    "WHERE j.id = cand.id AND cand.queue IS NULL AND NOT (SELECT seen FROM lost) "
    f"RETURNING {', '.join('j.' + name for name in JOB_COLUMNS)}, cand.seq AS cand_seq) "
    "SELECT EXISTS (SELECT 1 FROM cand WHERE queue IS NOT NULL) OR (SELECT seen FROM lost) "
    f"AS blocked, {', '.join('c.' + name for name in JOB_COLUMNS)} "
    "FROM (SELECT 1) AS one LEFT JOIN claimed AS c ON TRUE "
    "ORDER BY c.priority, c.run_at, c.cand_seq")


async def _version(conn: psycopg.AsyncConnection[Any]) -> int:
    cur = await conn.execute("SELECT to_regclass('taskpack_schema_version') IS NOT NULL")
    row = await cur.fetchone()
    if not row or not row[0]:
        return 0
    cur = await conn.execute("SELECT COALESCE(MAX(version), 0) FROM taskpack_schema_version")
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def _succeed(conn: psycopg.AsyncConnection[Any], worker: str,
                   items: Sequence[Finish]) -> dict[str, Job]:
    """End the successful attempts ``items`` with one statement; the jobs
    ``worker`` still held, by id (a cancelled job stays cancelled)."""
    if not items:
        return {}
    columns = ", ".join(f"j.{name}" for name in JOB_COLUMNS)
    cur = await conn.execute(
        "UPDATE taskpack_jobs AS j SET status = CASE WHEN j.status = 'running' "
        "THEN 'succeeded' ELSE j.status END, result = v.result, locked_by = NULL, "
        "locked_until = NULL, updated_at = %s "
        "FROM (SELECT unnest(%s::text[]) AS id, unnest(%s::text[]) AS result) AS v "
        "WHERE j.id = v.id AND j.locked_by = %s AND j.status IN ('running', 'cancelled') "
        f"RETURNING {columns}",
        (time.time(), [item.job_id for item in items],
         [json_text(item.result) for item in items], worker))
    return {job.id: job for job in map(job_from_row, await cur.fetchall())}


async def _finish(conn: psycopg.AsyncConnection[Any], worker: str, item: Finish) -> Job | None:
    """End one attempt inside the caller's transaction (see :meth:`Store.finish`)."""
    cur = await conn.execute(
        "SELECT status FROM taskpack_jobs WHERE id = %s AND locked_by = %s "
        "AND status IN ('running', 'cancelled') FOR UPDATE", (item.job_id, worker))
    row = await cur.fetchone()
    if row is None:
        return None
    now = time.time()
    status: str = row[0]
    if item.ok:
        cur = await conn.execute(
            "UPDATE taskpack_jobs SET status = %s, result = %s, locked_by = NULL, "
            f"locked_until = NULL, updated_at = %s WHERE id = %s "
            f"RETURNING {', '.join(JOB_COLUMNS)}",
            ("succeeded" if status == "running" else status, json_text(item.result), now,
             item.job_id))
    else:
        if status == "running":
            status = "pending" if item.retry_at is not None else "failed"
        cur = await conn.execute(
            "UPDATE taskpack_jobs SET status = %s, last_error = %s, traceback = %s, "
            "locked_by = NULL, locked_until = NULL, updated_at = %s, "
            "run_at = COALESCE(%s, run_at) WHERE id = %s "
            f"RETURNING {', '.join(JOB_COLUMNS)}",
            (status, clean_optional(item.error), clean_optional(item.traceback), now,
             item.retry_at if status == "pending" else None, item.job_id))
        if status == "pending":
            await conn.execute(f"NOTIFY {CHANNEL}")
    done = await cur.fetchone()
    return None if done is None else job_from_row(done)


async def _queue_free(conn: psycopg.AsyncConnection[Any], queue: str, now: float) -> bool:
    """Whether this transaction may start a job of ``queue``: it holds the
    queue's advisory lock (until commit) and no job of it is running. The
    check runs after the lock is taken, so it sees the commit of a claimer
    that held the lock before."""
    cur = await conn.execute("SELECT pg_try_advisory_xact_lock(hashtextextended(%s, 0))",
                             ("taskpack-queue:" + queue,))
    row = await cur.fetchone()
    if not row or not row[0]:
        return False
    cur = await conn.execute(
        "SELECT 1 FROM taskpack_jobs WHERE queue = %s AND status = 'running' "
        "AND locked_until >= %s LIMIT 1", (queue, now))
    return await cur.fetchone() is None


async def _job(conn: psycopg.AsyncConnection[Any], job_id: str) -> Job | None:
    cur = await conn.execute(f"{_JOBS} WHERE id = %s", (job_id,))
    row = await cur.fetchone()
    return None if row is None else job_from_row(row)


async def _enqueue(conn: psycopg.AsyncConnection[Any], job: NewJob, now: float) -> Job:
    values = (os.urandom(16).hex(), job.task, payload_text(job), job.run_at, now, now,
              job.max_attempts, job.queue, job.key, job.priority, job.trigger)
    insert = ("INSERT INTO taskpack_jobs (id, task, payload, status, run_at, created_at, "
              "updated_at, max_attempts, queue, key, priority, trigger) "
              "VALUES (%s, %s, %s, 'pending', %s, %s, %s, %s, %s, %s, %s, %s)")
    returning = f" RETURNING {', '.join(JOB_COLUMNS)}"
    if job.key is None:
        cur = await conn.execute(insert + returning, values)
    elif job.key_mode == "replace":
        cur = await conn.execute(
            insert + " ON CONFLICT (key) WHERE status = 'pending' AND key IS NOT NULL "
            "DO UPDATE SET task = EXCLUDED.task, payload = EXCLUDED.payload, "
            "run_at = EXCLUDED.run_at, priority = EXCLUDED.priority, queue = EXCLUDED.queue, "
            "max_attempts = EXCLUDED.max_attempts, trigger = EXCLUDED.trigger, "
            "updated_at = EXCLUDED.updated_at" + returning, values)
    else:
        cur = await conn.execute(
            insert + " ON CONFLICT (key) WHERE status = 'pending' AND key IS NOT NULL "
            "DO NOTHING" + returning, values)
        row = await cur.fetchone()
        if row is not None:
            return job_from_row(row)
        cur = await conn.execute(f"{_JOBS} WHERE key = %s AND status = 'pending'", (job.key,))
    row = await cur.fetchone()
    assert row is not None
    return job_from_row(row)
