"""The durable job queue (DESIGN §10), built on :mod:`taskpack.store`.

* :func:`enqueue_task` / :func:`enqueue_task_sync` store a job that a worker
  runs at least once (``enqueue``);
* :func:`spawn_task` runs a task in this process's background, never losing
  its error (``spawn``);
* :class:`Worker` claims due jobs and runs them (``worker``);
* :func:`bind_queue` says where this process's jobs go (``binding``);
* :func:`role_from_env` reads ``TASKPACK_ROLE`` (``roles``).
"""

from __future__ import annotations

from .binding import JobSink, QueueUnavailableError, bind_queue
from .enqueue import enqueue_task, enqueue_task_sync, new_job, submit
from .roles import ROLE_ENV, Role, RoleError, role_from_env
from .spawn import SpawnHandle, spawn_task
from .worker import DEFAULT_CONCURRENCY, Worker

__all__ = [
    "DEFAULT_CONCURRENCY",
    "ROLE_ENV",
    "JobSink",
    "QueueUnavailableError",
    "Role",
    "RoleError",
    "SpawnHandle",
    "Worker",
    "bind_queue",
    "enqueue_task",
    "enqueue_task_sync",
    "new_job",
    "role_from_env",
    "spawn_task",
    "submit",
]
