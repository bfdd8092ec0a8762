"""The run-history buffer every backend shares (DESIGN §10; issue 11 item 1, issue 14).

:meth:`Store.record_run` must never block, never raise and never fail a
task; a store that cannot be written must not hang anything either. So a
backend does not write runs where they are recorded: it adds them to a
:class:`RunBuffer` (bounded, thread-safe) and a background writer takes
them out in batches and stores them:

* the writer lingers: while fewer than :data:`BATCH` runs wait, it waits
  up to ``linger`` seconds (:data:`LINGER`) after the oldest one for more
  to share its transaction, so a busy server writes full batches rather
  than one per run; :meth:`RunBuffer.flush` (and so ``close``) never waits
  for that: it wakes the writer at once;
* a full buffer drops the new run and counts it in ``lost_runs``;
* a batch the store refuses is dropped and counted, except when the store
  is only unavailable for now (:class:`StoreUnavailable`: a database
  restarting): then the batch goes back to the front and the writer tries
  again after a backoff, while the buffer's bound still holds;
* the writer survives any exception a write raises;
* the first failure and the recovery are logged once each (logger
  ``taskpack.store``), and :meth:`RunBuffer.health` carries the error;
* :meth:`RunBuffer.flush` waits at most ``timeout`` seconds, on any event
  loop, for what was recorded before the call.

Runs are cleaned where they are stored, on the writer's side
(:func:`clean_text`, :func:`json_text`; the memory store when it is read,
:func:`clean_run`): strings that cannot be encoded (lone surrogates, NUL)
get replacement characters, payloads and results become JSON of bounded
size.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from ..jsonenc import encoder
from . import RunRecord, StoreUnavailable

logger = logging.getLogger("taskpack.store")

DEFAULT_CAPACITY = 10_000
"""Runs a buffer holds before it drops new ones."""

BATCH = 500
"""Runs stored per write (one transaction)."""

LINGER = 0.05
"""Seconds the writer waits, after the oldest unwritten run, for a full
:data:`BATCH` before it writes what it has (unless a flush waits)."""

MAX_JSON = 64 * 1024
"""Characters of a payload's or result's JSON text kept in the history."""


# -- cleaning ----------------------------------------------------------------


def clean_text(text: str) -> str:
    """``text`` with every code point a database refuses replaced by U+FFFD:
    lone surrogates (a file name from ``os.listdir`` that is not UTF-8) and
    NUL (PostgreSQL's text type refuses it)."""
    if text.isascii():
        return text.replace("\x00", "\ufffd") if "\x00" in text else text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text.replace("\x00", "\ufffd")


def json_text(value: Any) -> str | None:
    """``value`` as JSON text for a history row: None stays None; anything
    JSON cannot hold is written with ``str()``; text over :data:`MAX_JSON`
    characters becomes ``{"truncated": <size>, "preview": <start>}``."""
    if value is None:
        return None
    try:
        text = encode_json(value)
    except (ValueError, TypeError, RecursionError):
        text = json.dumps(clean_text(repr(value))[:MAX_JSON], ensure_ascii=False)
    if not text.isascii():  # JSON escapes NUL: only lone surrogates to clean
        text = clean_text(text)
    if len(text) > MAX_JSON:
        text = json.dumps({"truncated": len(text), "preview": text[:1000]}, ensure_ascii=False)
    return text


encode_json = encoder(ensure_ascii=False, default=str, allow_nan=False)
"""``value`` as JSON text (the C encoder made once, :mod:`taskpack.jsonenc`):
``RecursionError`` for a cycle, ``ValueError`` for NaN, ``TypeError`` for
keys JSON cannot hold."""


def from_json(text: str | None) -> Any:
    """The value of a stored JSON column (None for NULL or unreadable text)."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def clean_optional(text: str | None) -> str | None:
    """:func:`clean_text` of ``text``; None stays None."""
    return None if text is None else clean_text(text)


def clean_strings(run: RunRecord) -> RunRecord:
    """``run`` with its strings cleaned (:func:`clean_text`)."""
    return run._replace(
        id=clean_text(run.id), task=clean_text(run.task), trigger=clean_text(run.trigger),
        payload_hash=clean_text(run.payload_hash), error=clean_optional(run.error),
        host=clean_text(run.host), traceback=clean_optional(run.traceback),
        job_id=clean_optional(run.job_id),
    )


def clean_run(run: RunRecord) -> RunRecord:
    """``run`` as a store keeps it: strings cleaned (:func:`clean_strings`),
    ``payload``/``result`` turned into JSON-ready values (through
    :func:`json_text`)."""
    return clean_strings(run)._replace(payload=from_json(json_text(run.payload)),
                                       result=from_json(json_text(run.result)))


# -- the buffer --------------------------------------------------------------


class _Waiter:
    __slots__ = ("future", "loop", "lost", "target")

    def __init__(self, target: int, lost: int, loop: asyncio.AbstractEventLoop,
                 future: asyncio.Future[bool]) -> None:
        self.target, self.lost, self.loop, self.future = target, lost, loop, future


def _resolve(future: asyncio.Future[bool], value: bool) -> None:
    if not future.done():
        future.set_result(value)


class RunBuffer:
    """Runs waiting to be stored, and the history's health.

    ``kick`` is called (from whatever thread recorded the run) when the
    buffer goes from empty to holding runs, when a full batch waits and when
    a flush starts: the backend then wakes its writer, which asks
    :meth:`due` whether to write now or how long to linger. The writer
    calls :meth:`take` and reports each batch with :meth:`stored` or
    :meth:`failed`; :meth:`write_due` (a thread) and :meth:`drain_async`
    (a task) are those loops, written once.
    """

    def __init__(self, backend: str, kick: Callable[[], None], *,
                 capacity: int = DEFAULT_CAPACITY) -> None:
        self.backend = backend
        self.capacity = capacity
        self.linger = LINGER
        self._kick = kick
        self._lock = threading.Lock()
        self._runs: deque[tuple[int, RunRecord]] = deque()
        self._recorded = 0  # sequence number of the newest run added
        self._done = 0  # every run up to this number is stored or dropped
        self._taken: list[tuple[int, RunRecord]] = []
        self.lost_runs = 0
        self.error: str | None = None
        self._full = False
        self._waiters: list[_Waiter] = []
        self._since = 0.0  # time.monotonic() when the oldest queued run came

    # recording side

    def add(self, run: RunRecord) -> None:
        """Queue ``run``; never blocks, never raises (a full buffer drops it)."""
        try:
            with self._lock:
                if len(self._runs) + len(self._taken) >= self.capacity:
                    self.lost_runs += 1
                    if not self._full:
                        self._full = True
                        logger.error("store (%s): %d runs wait to be stored; dropping new "
                                     "runs until the writer catches up", self.backend,
                                     self.capacity)
                    return
                self._full = False
                self._recorded += 1
                self._runs.append((self._recorded, run))
                queued = len(self._runs)
                if queued == 1:
                    self._since = time.monotonic()
                wake = (queued == 1 and not self._taken) or queued == BATCH
            if wake:
                self._kick()
        except Exception:  # never let history fail a task
            logger.exception("store (%s): cannot queue run %s", self.backend, run.id)

    @property
    def pending(self) -> int:
        """Runs queued or being written."""
        with self._lock:
            return len(self._runs) + len(self._taken)

    def health(self) -> dict[str, Any]:
        """``error`` (the last write's, None when it worked) and ``lost_runs``."""
        return {"error": self.error, "lost_runs": self.lost_runs}

    async def flush(self, timeout: float) -> bool:
        """Wait at most ``timeout`` seconds until every run recorded before
        the call is stored or dropped; True when all of them were stored."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._done >= self._recorded:
                return True
            waiter = _Waiter(self._recorded, self.lost_runs, loop, loop.create_future())
            self._waiters.append(waiter)
        self._kick()  # the writer stops lingering
        try:
            return await asyncio.wait_for(asyncio.shield(waiter.future), max(timeout, 0.0))
        except TimeoutError:
            return False
        finally:
            with self._lock:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    # writer side

    def due(self, linger: float | None = None) -> float | None:
        """0.0 when a batch should be written now (a full batch waits, a
        flush waits, or the oldest run waited ``linger`` seconds, default
        :attr:`linger`), else the seconds left to linger; None when nothing
        waits."""
        with self._lock:
            if not self._runs:
                return None
            if self._waiters or len(self._runs) >= BATCH:
                return 0.0
            wait = self.linger if linger is None else linger
            return max(0.0, self._since + wait - time.monotonic())

    def take(self, limit: int = BATCH) -> list[RunRecord]:
        """The next batch (oldest first), marked as being written; empty
        when nothing waits."""
        with self._lock:
            while self._runs and len(self._taken) < limit:
                self._taken.append(self._runs.popleft())
            return [run for _, run in self._taken]

    def stored(self) -> None:
        """The batch from :meth:`take` is stored."""
        with self._lock:
            self._finish_batch()
            recovered, self.error = self.error, None
        if recovered is not None:
            logger.warning("store (%s): recording runs again (%d lost so far)", self.backend,
                           self.lost_runs)

    def failed(self, exc: BaseException) -> bool:
        """The batch from :meth:`take` could not be stored. A
        :class:`StoreUnavailable` keeps it for another try (returns True);
        anything else drops and counts it (returns False)."""
        keep = isinstance(exc, StoreUnavailable)
        message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        with self._lock:
            count = len(self._taken)
            if keep:
                self._runs.extendleft(reversed(self._taken))
                self._taken = []
            else:
                self.lost_runs += count
                self._finish_batch()
            first, self.error = self.error is None, clean_text(message)
        if first:
            logger.error("store (%s): cannot record runs (%s); %s", self.backend, message,
                         f"retrying; up to {self.capacity} runs wait in memory, more are "
                         "dropped and counted (/_health: lost_runs)" if keep else
                         "runs are dropped and counted (/_health: lost_runs) until it works "
                         "again")
        return keep

    def _finish_batch(self) -> None:
        if self._taken:
            self._done = self._taken[-1][0]
            self._taken = []
        if not self._runs:
            self._done = self._recorded
        ready = [w for w in self._waiters if w.target <= self._done]
        for waiter in ready:
            self._waiters.remove(waiter)
            ok = waiter.lost == self.lost_runs
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits
                waiter.loop.call_soon_threadsafe(_resolve, waiter.future, ok)

    def write_due(self, write: Callable[[list[RunRecord]], None],
                  linger: float | None = None) -> float | None:
        """Store the batches that are :meth:`due` (``linger`` as there) with
        ``write`` (a writer thread's body, called whenever the thread wakes)
        and return what :meth:`due` says next: the seconds to linger, or
        None (nothing waits). An unavailable store is retried three times
        with backoff (under half a second), then the batch is dropped."""
        while (wait := self.due(linger)) == 0.0:
            batch = self.take()
            for attempt in range(1, 5):
                try:
                    write(batch)
                except BaseException as exc:  # the writer survives anything
                    if not self.failed(exc):
                        break
                    if attempt > 3:
                        self._drop_front(len(batch))
                        break
                    time.sleep(backoff(attempt))
                    batch = self.take()  # the same runs first, and newer ones
                else:
                    self.stored()
                    break
        return wait

    def _drop_front(self, count: int) -> None:
        """Give up on the ``count`` oldest runs (a batch retried in vain)."""
        with self._lock:
            self._taken = [self._runs.popleft() for _ in range(min(count, len(self._runs)))]
            self.lost_runs += len(self._taken)
            self._finish_batch()

    async def drain_async(self, write: Callable[[list[RunRecord]], Awaitable[None]],
                          wake: asyncio.Event) -> None:
        """The writer task of an async backend: store the batches that are
        :meth:`due`, lingering until ``wake`` is set (the backend's
        ``kick``) or the linger ends, until cancelled. A
        :class:`StoreUnavailable` keeps the batch and retries with backoff
        (forever: the buffer's bound limits memory); any other exception
        drops the batch."""
        tries = 0
        while True:
            wake.clear()
            wait = self.due()
            if wait != 0.0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), wait)
                continue
            try:
                await write(self.take())
            except asyncio.CancelledError:
                self.failed(StoreUnavailable("the store is closing"))
                raise
            except BaseException as exc:
                if self.failed(exc):
                    tries += 1
                    await asyncio.sleep(backoff(tries, cap=2.0))
            else:
                tries = 0
                self.stored()


def backoff(attempt: int, *, base: float = 0.05, cap: float = 2.0) -> float:
    """Seconds to wait before retry ``attempt`` (1, 2, ...): doubling from
    ``base``, at most ``cap``."""
    return float(min(cap, base * 2 ** max(attempt - 1, 0)))
