"""Observability: subscribe to finished runs to ship metrics elsewhere.

>>> from taskpack import events
>>> unsubscribe = events.on_run_finished(lambda run: statsd.timing(run.task, run.duration_ms))

A callback receives the run's :class:`~taskpack.store.RunRecord` once per
run (joined calls are not runs of their own), in the process that ran it,
right after the run is handed to the store's run history and before its callers
resume. Callbacks run on the event loop: keep them short; an async callback
is scheduled as a background task. An exception in a callback is logged
(logger ``taskpack.events``) and never affects the run or other callbacks.

Besides this, every module logs to ``logging.getLogger("taskpack.<module>")``;
``taskpack.execution`` writes one ``key=value`` line per attempt.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import Any

from .store import RunRecord

logger = logging.getLogger(__name__)

RunCallback = Callable[[RunRecord], Any]

_subscribers: list[RunCallback] = []
_background: set[asyncio.Future[Any]] = set()


def on_run_finished(callback: RunCallback) -> Callable[[], None]:
    """Call ``callback(run)`` after every run; returns a function that
    unsubscribes it. ``TypeError`` if ``callback`` is not callable."""
    if not callable(callback):
        raise TypeError(f"on_run_finished: expected a function, got {type(callback).__name__}")
    _subscribers.append(callback)

    def unsubscribe() -> None:
        if callback in _subscribers:
            _subscribers.remove(callback)

    return unsubscribe


def has_subscribers() -> bool:
    """Whether anyone listens (the execution layer skips the call if not)."""
    return bool(_subscribers)


def run_finished(run: RunRecord) -> None:
    """Deliver ``run`` to every subscriber (called by the execution layer)."""
    for callback in tuple(_subscribers):
        try:
            result = callback(run)
            if inspect.isawaitable(result):
                future = asyncio.ensure_future(result)
                _background.add(future)
                future.add_done_callback(_finished)
        except Exception:
            logger.exception("run_finished callback %r failed for run %s", callback, run.id)


def _finished(future: asyncio.Future[Any]) -> None:
    _background.discard(future)
    if not future.cancelled() and future.exception() is not None:
        logger.error("async run_finished callback failed", exc_info=future.exception())
