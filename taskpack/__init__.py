"""taskpack runtime: Nitro-style tasks for Python.

This package is bundled into every deploy output, so it imports nothing
beyond the standard library at import time (the cron module needs
``croniter``; the server entry points need ``uvicorn``).
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
from .history import HistoryStore, MemoryHistory, NoHistory, RunRecord
from .options import RetryPolicy
from .registry import Registry, get_registry, run_task, run_task_sync, set_registry
from .task import Task, TaskContext, TaskEvent, define_task

__version__ = "0.1.0"

__all__ = [
    "HistoryStore",
    "MemoryHistory",
    "NoHistory",
    "NonRetryableError",
    "PayloadValidationError",
    "Registry",
    "RetryPolicy",
    "RunRecord",
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
    "events",
    "get_registry",
    "run_task",
    "run_task_sync",
    "set_registry",
]
