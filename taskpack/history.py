"""The run history: one record per run, in memory, in SQLite, or nowhere.

Every run a :class:`~taskpack.Registry` executes (manual, HTTP or
scheduled; a call that joins a running one is not a run of its own) ends
with one :class:`RunRecord` handed to the registry's :class:`HistoryStore`.
Three stores implement the same contract:

* :class:`MemoryHistory`: per process, the default where there is no disk
  worth keeping (Cloudflare, Vercel, library use);
* :class:`~taskpack.history_sqlite.SQLiteHistory`: a SQLite file in WAL
  mode, safe with several processes writing (the ``server_cluster``
  workers), the default for ``taskpack dev`` and the server presets. It
  lives in its own module because ``sqlite3`` does not exist under Pyodide;
* :class:`NoHistory`: records nothing.

Each keeps at most ``limit`` runs per task, dropping the oldest. The module
is standard library only.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections import deque
from pathlib import Path
from typing import Any, Literal, NamedTuple

logger = logging.getLogger(__name__)

Outcome = Literal["ok", "error", "timeout", "invalid", "cancelled"]
OUTCOMES: tuple[Outcome, ...] = ("ok", "error", "timeout", "invalid", "cancelled")

DEFAULT_LIMIT = 1000
DEFAULT_PATH = ".taskpack/history.sqlite"


class RunRecord(NamedTuple):
    """One finished run (an immutable named tuple).

    ``id`` is unique across processes (hex); ``trigger`` is the context's
    (``manual``, ``http``, ``schedule:<cron>``); ``payload_hash`` the first
    16 hex digits of the SHA-256 of the payload's canonical JSON, as
    received (before schema validation); ``started_at``/``finished_at`` are
    epoch seconds; ``attempts`` is 0 when the payload was rejected;
    ``outcome`` is ``ok``, ``error``, ``timeout`` (the last attempt timed
    out), ``invalid`` (rejected by the payload schema) or ``cancelled``
    (the server stopped waiting for it, e.g. at shutdown); ``error`` is
    ``"ExceptionType: message"`` or ``None``.
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

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready data (the HTTP endpoint and ``--json``)."""
        return self._asdict()


class HistoryStore:
    """The contract every history backend implements.

    * :meth:`record` stores one finished run. It is called once per run,
      on the event loop, after the run's outcome is known; it must be quick
      and must not raise for a storage problem (log it instead: losing a
      history row must never fail a task).
    * :meth:`runs` returns stored runs, most recently recorded first, of
      one task or of all, at most ``limit`` of them.
    * :meth:`last_runs` returns each task's newest run.
    * :meth:`close` releases resources; a closed store may be reopened by
      using it again.

    A store keeps at most ``limit`` runs per task (``self.limit``), dropping
    the oldest when it records a new one. Implementations must be safe to
    call from several threads.
    """

    limit: int = DEFAULT_LIMIT

    def record(self, run: RunRecord) -> None:
        raise NotImplementedError

    def runs(self, task: str | None = None, limit: int = 20) -> list[RunRecord]:
        raise NotImplementedError

    def last_runs(self) -> dict[str, RunRecord]:
        raise NotImplementedError

    def close(self) -> None:
        """Nothing to release by default."""


class NoHistory(HistoryStore):
    """Records nothing; every query is empty."""

    def record(self, run: RunRecord) -> None:
        pass

    def runs(self, task: str | None = None, limit: int = 20) -> list[RunRecord]:
        return []

    def last_runs(self) -> dict[str, RunRecord]:
        return {}


class MemoryHistory(HistoryStore):
    """Runs kept in this process's memory, ``limit`` per task."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self.limit = check_limit(limit)
        self._runs: dict[str, deque[tuple[int, RunRecord]]] = {}
        self._seq = itertools.count()
        self._lock = threading.Lock()

    def record(self, run: RunRecord) -> None:
        with self._lock:
            runs = self._runs.get(run.task)
            if runs is None:
                runs = self._runs[run.task] = deque(maxlen=self.limit)
            runs.append((next(self._seq), run))

    def runs(self, task: str | None = None, limit: int = 20) -> list[RunRecord]:
        with self._lock:
            if task is not None:
                found = list(self._runs.get(task, ()))
            else:
                found = [item for runs in self._runs.values() for item in runs]
        found.sort(key=lambda item: item[0], reverse=True)
        return [run for _, run in found[:limit]]

    def last_runs(self) -> dict[str, RunRecord]:
        with self._lock:
            return {task: runs[-1][1] for task, runs in sorted(self._runs.items()) if runs}


HistoryKind = Literal["memory", "sqlite", "none"]


def open_history(kind: HistoryKind | HistoryStore, root: Path, path: str = DEFAULT_PATH,
                 limit: int = DEFAULT_LIMIT, *, threads: bool = True) -> HistoryStore:
    """The store for ``kind``: a :class:`HistoryStore` is returned as is;
    ``"sqlite"`` opens ``path`` (relative paths are under ``root``), with a
    writer thread unless ``threads`` is false. ``ValueError`` for an
    unknown kind."""
    if isinstance(kind, HistoryStore):
        return kind
    if kind == "memory":
        return MemoryHistory(limit)
    if kind == "sqlite":
        from .history_sqlite import SQLiteHistory  # sqlite3 is missing under Pyodide

        return SQLiteHistory(root / path, limit, threaded=threads)
    if kind == "none":
        return NoHistory()
    raise ValueError(f"unknown history kind {kind!r} (use 'memory', 'sqlite' or 'none')")


def check_limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"history limit must be an integer >= 1, got {limit!r}")
    return limit
