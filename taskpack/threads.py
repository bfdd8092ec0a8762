"""A thread pool of daemon threads, for work the process must not wait for
at exit.

:class:`concurrent.futures.ThreadPoolExecutor` (and so asyncio's default
executor) joins its threads when the interpreter exits, so one sync task
that never returns keeps a stopped server alive forever. The server gives
running tasks ``shutdown_grace`` seconds and then records them as
cancelled; :class:`DaemonThreadPool` lets the process exit after that, the
abandoned threads ending with it.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

_Item = tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class DaemonThreadPool(Executor):
    """Up to ``max_workers`` daemon threads named ``<name>-N``, started on
    demand and reused while idle. Usable from a forked child (it starts
    afresh there: threads do not survive a fork)."""

    def __init__(self, max_workers: int, name: str) -> None:
        if max_workers < 1:
            raise ValueError("DaemonThreadPool: max_workers must be at least 1")
        self.max_workers = max_workers
        self.name = name
        self._reset()
        if hasattr(os, "register_at_fork"):  # not under Pyodide
            os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._lock = threading.Lock()
        self._count = 0

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        future: Future[T] = Future()
        self._queue.put((future, fn, args, kwargs))
        if not self._idle.acquire(blocking=False):
            with self._lock:
                if self._count < self.max_workers:
                    self._count += 1
                    threading.Thread(target=self._work, name=f"{self.name}-{self._count}",
                                     daemon=True).start()
        return future

    def _work(self) -> None:
        while True:
            future, fn, args, kwargs = self._queue.get()
            if future.set_running_or_notify_cancel():
                try:
                    result = fn(*args, **kwargs)
                except BaseException as exc:
                    future.set_exception(exc)
                else:
                    future.set_result(result)
            del future, fn, args, kwargs
            self._idle.release()
