"""The SQLite run history store (see :mod:`taskpack.history` for the contract).

A module of its own because ``sqlite3`` is not part of Pyodide's standard
library: the Cloudflare runtime never imports it.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import sqlite3
import threading
import time
import weakref
from pathlib import Path

from .history import DEFAULT_LIMIT, HistoryStore, RunRecord, check_limit

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    task TEXT NOT NULL,
    trigger TEXT NOT NULL,
    payload_hash TEXT NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL NOT NULL,
    duration_ms REAL NOT NULL,
    attempts INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    error TEXT
);
CREATE INDEX IF NOT EXISTS runs_task_seq ON runs (task, seq);
"""

_COLUMNS = ("id", "task", "trigger", "payload_hash", "started_at", "finished_at",
            "duration_ms", "attempts", "outcome", "error")
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM runs"


class SQLiteHistory(HistoryStore):
    """Runs in a SQLite file, shared by every process that opens it.

    The file (and its folder) is created on first use and put in WAL mode,
    so readers never block writers. :meth:`record` only queues the run: a
    writer thread stores the queue in batches, each one ``BEGIN IMMEDIATE``
    transaction that inserts the runs and drops each task's runs beyond
    ``limit``. Writers in other processes wait for the lock (up to
    ``busy_timeout`` seconds) instead of failing, so concurrent writers lose
    no rows. :meth:`runs`, :meth:`last_runs` and :meth:`close` first wait
    for the queue to be written (a process reads its own runs); queued runs
    are also written at interpreter exit. With ``threaded=False`` (no
    threads, as under Pyodide) each record is written at once, on the
    caller's thread. The connection is opened lazily and reopened after
    ``fork``. ``synchronous=NORMAL``: a power cut may lose the last runs,
    never corrupt the file. Runs are ordered by when they were written.
    """

    def __init__(self, path: str | os.PathLike[str], limit: int = DEFAULT_LIMIT,
                 *, busy_timeout: float = 30.0, threaded: bool = True) -> None:
        self.path = Path(path)
        self.limit = check_limit(limit)
        self.busy_timeout = busy_timeout
        self.threaded = threaded
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[RunRecord | None] = queue.SimpleQueue()
        self._pending = 0
        self._idle = threading.Condition()
        self._writer: threading.Thread | None = None
        self._writer_pid = 0

    def record(self, run: RunRecord) -> None:
        if not self.threaded:
            self._write([run])
            return
        if self._writer is None or self._writer_pid != os.getpid():
            self._start_writer()
        with self._idle:
            self._pending += 1
        self._queue.put(run)

    def flush(self) -> None:
        """Wait until every queued run is written."""
        with self._idle:
            self._idle.wait_for(lambda: self._pending == 0)

    def runs(self, task: str | None = None, limit: int = 20) -> list[RunRecord]:
        self.flush()
        where, params = ("WHERE task = ?", (task,)) if task is not None else ("", ())
        with self._lock:
            rows = self._connection().execute(
                f"{_SELECT} {where} ORDER BY seq DESC LIMIT ?", (*params, limit)
            ).fetchall()
        return [RunRecord(*row) for row in rows]

    def last_runs(self) -> dict[str, RunRecord]:
        self.flush()
        with self._lock:
            rows = self._connection().execute(
                f"{_SELECT} WHERE seq IN (SELECT MAX(seq) FROM runs GROUP BY task) ORDER BY task"
            ).fetchall()
        return {row[1]: RunRecord(*row) for row in rows}

    def close(self) -> None:
        """Write what is queued, stop the writer and close the connection."""
        if self._writer is not None and self._writer_pid == os.getpid():
            self.flush()
            self._queue.put(None)
            self._writer.join()
        self._writer = None
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    def _start_writer(self) -> None:
        with self._lock:
            if self._writer is not None and self._writer_pid == os.getpid():
                return
            if self._writer_pid != os.getpid():  # a forked child: the parent's queue is not ours
                self._queue = queue.SimpleQueue()
                self._idle = threading.Condition()
                self._pending = 0
            self._writer = threading.Thread(target=self._drain, daemon=True,
                                            name=f"taskpack-history:{self.path}")
            self._writer_pid = os.getpid()
            self._writer.start()
            _open_stores.add(self)

    def _drain(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._write(batch)
            with self._idle:
                self._pending -= len(batch)
                self._idle.notify_all()
            if stop:
                return

    def _write(self, batch: list[RunRecord]) -> None:
        rows = [(run.id, run.task, run.trigger, run.payload_hash, run.started_at,
                 run.finished_at, run.duration_ms, run.attempts, run.outcome, run.error)
                for run in batch]
        try:
            with self._lock:
                conn = self._connection()
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.executemany(f"INSERT OR IGNORE INTO runs ({', '.join(_COLUMNS)}) "
                                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
                    conn.executemany(
                        "DELETE FROM runs WHERE task = ?1 AND seq <= (SELECT seq FROM runs "
                        "WHERE task = ?1 ORDER BY seq DESC LIMIT 1 OFFSET ?2)",
                        [(task, self.limit) for task in sorted({run.task for run in batch})],
                    )
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            logger.error("history: cannot record %d run(s) (first: %s of task %s) in %s: %s",
                         len(batch), batch[0].id, batch[0].task, self.path, exc)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None,
                               check_same_thread=False)
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.executescript(_SCHEMA)
                break
            except sqlite3.OperationalError as exc:  # another process is creating it
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    conn.close()
                    raise
                time.sleep(0.01)
        self._conn, self._pid = conn, os.getpid()
        return conn


_open_stores: weakref.WeakSet[SQLiteHistory] = weakref.WeakSet()


@atexit.register
def _write_queued_runs() -> None:
    """At interpreter exit, write what the SQLite stores still have queued."""
    for store in list(_open_stores):
        store.close()
