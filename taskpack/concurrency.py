"""Concurrency gates: how calls of one task share or queue for execution.

A gate wraps one run: ``await gate.run(payload, start)`` where ``start()``
begins a fresh run. Two kinds:

* :class:`JoinGate` (``dedupe``, ``dedupe_payload``): while a run with the
  same key is in flight on this event loop, a call joins it and gets the same
  result or exception. The in-flight entry is registered before the first
  ``await``, so calls made in the same event-loop tick join too (100 gathered
  calls run the body once).
* :class:`LimitGate` (``parallel``, ``serial``): at most ``limit`` runs at
  once per event loop; excess calls wait in FIFO order.

State is kept per event loop, because ``run_task_sync`` runs each call on a
fresh loop and futures cannot cross loops.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from .jsonenc import encoder
from .options import TaskOptions

Start = Callable[[], Awaitable[Any]]


class Gate:
    """Base class: runs ``start()`` for ``payload`` under the gate's policy."""

    async def run(self, payload: Any, start: Start) -> Any:
        raise NotImplementedError

    def is_running(self) -> bool:
        """Whether a run is in flight on the running event loop."""
        raise NotImplementedError


class DirectGate(Gate):
    """No sharing and no limit (``parallel`` without ``max_concurrency``)."""

    def __init__(self) -> None:
        self._running: dict[int, int] = {}

    async def run(self, payload: Any, start: Start) -> Any:
        loop = id(asyncio.get_running_loop())
        self._running[loop] = self._running.get(loop, 0) + 1
        try:
            return await start()
        finally:
            left = self._running[loop] - 1
            if left:
                self._running[loop] = left
            else:
                del self._running[loop]

    def is_running(self) -> bool:
        return id(asyncio.get_running_loop()) in self._running


class JoinGate(Gate):
    """Join a running call with an equal key; ``by_payload`` keys by the
    payload's canonical JSON, else every call of the task shares one key."""

    def __init__(self, by_payload: bool) -> None:
        self.by_payload = by_payload
        self._inflight: dict[tuple[int, str], asyncio.Future[Any]] = {}

    async def run(self, payload: Any, start: Start) -> Any:
        loop = asyncio.get_running_loop()
        key = (id(loop), canonical_json(payload) if self.by_payload else "")
        running = self._inflight.get(key)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[Any] = loop.create_future()
        self._inflight[key] = future
        try:
            result = await start()
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

    def is_running(self) -> bool:
        loop = id(asyncio.get_running_loop())
        return any(key[0] == loop for key in self._inflight)


class LimitGate(Gate):
    """At most ``limit`` runs at once per event loop; the rest queue FIFO."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Limiter] = (
            weakref.WeakKeyDictionary()
        )

    async def run(self, payload: Any, start: Start) -> Any:
        loop = asyncio.get_running_loop()
        limiter = self._limiters.get(loop)
        if limiter is None:
            limiter = self._limiters[loop] = _Limiter(self.limit)
        await limiter.acquire()
        try:
            return await start()
        finally:
            limiter.release()

    def is_running(self) -> bool:
        limiter = self._limiters.get(asyncio.get_running_loop())
        return limiter is not None and limiter.free < self.limit


class _Limiter:
    """A FIFO counting semaphore for one loop: a released slot passes
    straight to the longest waiter, so late callers cannot overtake."""

    def __init__(self, limit: int) -> None:
        self.free = limit
        self.waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self) -> None:
        if self.free > 0 and not self.waiters:
            self.free -= 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # the slot was handed over as we were cancelled
            else:
                self.waiters.remove(waiter)
            raise

    def release(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.free += 1


def make_gate(options: TaskOptions) -> Gate:
    """The gate for a task's ``concurrency``/``max_concurrency`` options."""
    if options.concurrency == "dedupe":
        return JoinGate(by_payload=False)
    if options.concurrency == "dedupe_payload":
        return JoinGate(by_payload=True)
    if options.concurrency == "serial":
        return LimitGate(1)
    if options.max_concurrency is None:
        return DirectGate()
    return LimitGate(options.max_concurrency)


def canonical_json(payload: Any) -> str:
    """The payload as canonical JSON (sorted keys, no spaces); values that
    are not JSON are written with ``repr`` so any payload has a key."""
    if not payload:
        return "{}" if isinstance(payload, dict) else repr(payload)
    return _CANONICAL(payload)


_CANONICAL = encoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=repr)
