"""Where this process's jobs go: the queue :func:`enqueue_task` writes to.

A server, ``taskpack dev``, ``taskpack worker`` and the platform entries
bind one :class:`JobSink` per process with :func:`bind_queue`: normally the
open :class:`~taskpack.store.Store` (it has the ``enqueue`` method), on
Cloudflare a sender to the Worker's Queue binding. Code that enqueues from
a sync task running in a worker thread reaches the bound sink on the loop
it was bound on (``enqueue_task_sync``); that is why the loop is kept.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

from ..errors import TaskError
from ..store import Job, NewJob

NOT_BOUND = ("no job queue in this process: run under `taskpack dev`, `taskpack worker` "
             "or a built server, or call taskpack.queue.bind_queue(store) first")


class JobSink(Protocol):
    """Stores a validated job and returns it as stored (a
    :class:`~taskpack.store.Store` is one)."""

    async def enqueue(self, job: NewJob) -> Job: ...


class QueueUnavailableError(TaskError):
    """This process has no queue to enqueue to (HTTP 503); the message
    says what to configure (on Vercel: a Postgres store and an external
    worker)."""

    status_code = 503


@dataclass(frozen=True)
class Binding:
    sink: JobSink | None
    loop: asyncio.AbstractEventLoop | None
    missing: str


_binding = Binding(None, None, NOT_BOUND)


def bind_queue(sink: JobSink | None, *, missing: str = NOT_BOUND) -> None:
    """Make ``sink`` the queue of this process, bound to the running event
    loop (if any). ``None`` unbinds; ``missing`` is then the message of the
    :class:`QueueUnavailableError` that ``enqueue_task`` raises."""
    global _binding
    try:
        loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    _binding = Binding(sink, loop if sink is not None else None, missing)


def current() -> Binding:
    """The binding in force (its sink may be None)."""
    return _binding


def bound_sink() -> JobSink:
    """The bound sink; :class:`QueueUnavailableError` when there is none."""
    if _binding.sink is None:
        raise QueueUnavailableError(_binding.missing)
    return _binding.sink
