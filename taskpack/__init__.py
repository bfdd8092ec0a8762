"""taskpack runtime: Nitro-style tasks for Python.

This package is bundled into every deploy output, so it imports nothing
beyond the standard library at import time (the cron module needs
``croniter``; the server entry points need ``uvicorn``).
"""

from __future__ import annotations

from .errors import TaskError, TaskLoadError, TaskNotFoundError, TaskNotImplementedError
from .registry import Registry, get_registry, run_task, run_task_sync, set_registry
from .task import Task, TaskContext, TaskEvent, define_task

__version__ = "0.1.0"

__all__ = [
    "Registry",
    "Task",
    "TaskContext",
    "TaskError",
    "TaskEvent",
    "TaskLoadError",
    "TaskNotFoundError",
    "TaskNotImplementedError",
    "__version__",
    "define_task",
    "get_registry",
    "run_task",
    "run_task_sync",
    "set_registry",
]
