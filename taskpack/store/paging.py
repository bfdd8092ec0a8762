"""Opaque page cursors (``list_runs``, ``list_jobs``), the paged query of
the SQL backends, and the in-process wake-up of waiting workers, shared by
every backend."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import threading
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

T = TypeVar("T", bound=Sequence[Any])

NO_VALUE: Any = object()
"""A test's value in :func:`paged_query` for a test that takes no parameter."""


def encode_cursor(position: int) -> str:
    """The cursor of the page that starts below ``position`` (a row's
    sequence number): opaque, URL-safe."""
    return base64.urlsafe_b64encode(f"tp1:{position}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    """The position in ``cursor`` (None: the first page); ``ValueError``
    for a cursor no backend made."""
    if cursor is None:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, number = text.partition(":")
        if prefix != "tp1" or not number.isdigit():
            raise ValueError
        return int(number)
    except (ValueError, UnicodeDecodeError):
        raise ValueError(f"invalid cursor {cursor[:40]!r}") from None


def paged_query(select: str, tests: Iterable[tuple[str, Any]], limit: int,
                mark: str) -> tuple[str, tuple[Any, ...]]:
    """The SQL and parameters of one page of ``select`` (``SELECT seq, ...
    FROM table``): the tests whose value is not None (each holding one
    ``mark`` placeholder for its value; :data:`NO_VALUE`: none) joined by
    AND, newest first, one row more than ``limit`` (:func:`split_page`
    tells from it whether a next page exists)."""
    where: list[str] = []
    params: list[Any] = []
    for test, value in tests:
        if value is not None:
            where.append(test)
            if value is not NO_VALUE:
                params.append(value)
    sql = (f"{select}{' WHERE ' + ' AND '.join(where) if where else ''}"
           f" ORDER BY seq DESC LIMIT {mark}")
    return sql, (*params, limit + 1)


def split_page(items: Sequence[T], limit: int) -> tuple[Sequence[T], str | None]:
    """The first ``limit`` of ``items`` (rows or tuples starting with their
    sequence number, newest first, up to one more) and the cursor of the
    next page (None when there is none)."""
    page = items[:limit]
    more = len(items) > limit and bool(page)
    return page, (encode_cursor(int(page[-1][0])) if more else None)


class Wakeup:
    """Wakes coroutines waiting for jobs in this process; :meth:`notify` is
    safe from any thread, :meth:`wait` from any event loop. A notification
    that finds nobody waiting is kept for the next :meth:`wait`, which then
    returns at once: a worker between its claim and its wait must not miss
    the job that arrived meanwhile (a spurious wake-up only costs a claim)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = set()
        self._missed = False

    def notify(self) -> None:
        with self._lock:
            waiters, self._waiters = self._waiters, set()
            self._missed = not waiters
        for loop, future in waiters:
            with contextlib.suppress(RuntimeError):  # its loop is closed
                loop.call_soon_threadsafe(_wake, future)

    async def wait(self, timeout: float) -> None:
        """Return on :meth:`notify` (or one nobody waited for since the last
        wait) or after ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        item = (loop, loop.create_future())
        with self._lock:
            if self._missed:
                self._missed = False
                return
            self._waiters.add(item)
        try:
            await asyncio.wait_for(asyncio.shield(item[1]), max(timeout, 0.0))
        except TimeoutError:
            pass
        finally:
            with self._lock:
                self._waiters.discard(item)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
