"""taskpack runtime: Nitro-style tasks for Python.

This package is bundled into every deploy output, so it imports nothing
beyond the standard library at import time (the cron module needs nothing
more; the servers need ``uvloop`` and ``httptools``, or ``uvicorn``).
"""

from __future__ import annotations

from . import events
from .errors import (
    NonRetryableError,
    PayloadValidationError,
    TaskAbortedError,
    TaskError,
    TaskLoadError,
    TaskNotFoundError,
    TaskNotImplementedError,
    TaskTimeoutError,
)
from .options import RetryPolicy
from .queue import QueueUnavailableError, SpawnHandle, enqueue_task, enqueue_task_sync, spawn_task
from .registry import Registry, get_registry, run_task, run_task_sync, set_registry
from .store import RunRecord, Store, StoreError, StoreUnavailable
from .task import JobInfo, Task, TaskContext, TaskEvent, define_task

__version__ = "0.1.0"

__all__ = [
    "JobInfo",
    "NonRetryableError",
    "PayloadValidationError",
    "QueueUnavailableError",
    "Registry",
    "RetryPolicy",
    "RunRecord",
    "SpawnHandle",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "Task",
    "TaskAbortedError",
    "TaskContext",
    "TaskError",
    "TaskEvent",
    "TaskLoadError",
    "TaskNotFoundError",
    "TaskNotImplementedError",
    "TaskTimeoutError",
    "__version__",
    "define_task",
    "enqueue_task",
    "enqueue_task_sync",
    "events",
    "get_registry",
    "run_task",
    "run_task_sync",
    "set_registry",
    "spawn_task",
]
