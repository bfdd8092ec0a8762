"""The task model: :func:`define_task`, :class:`Task`, and what a run receives."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Unpack, overload

from .options import DEFAULT_OPTIONS, OptionArgs, TaskOptions, make_options

TaskFunction = Callable[["TaskEvent"], Any]


class TaskContext:
    """What the platform lends a run besides its payload.

    ``trigger`` says who started the run (``manual``, ``http``, ``spawn``,
    ``job`` or ``schedule:<cron>``). Platform entry points add their own objects as
    attributes (Cloudflare: ``env`` and ``ctx``). :meth:`wait_until` keeps the
    platform alive for background work started by the task: the awaitable is
    handed to the platform's hook when there is one, else scheduled on the
    running loop and awaited by whoever drains the registry (the server
    before shutdown, the CLI before exit).
    """

    def __init__(
        self,
        *,
        trigger: str = "manual",
        wait_until: Callable[[Awaitable[Any]], None] | None = None,
        **extra: Any,
    ) -> None:
        self.trigger = trigger
        self._wait_until = wait_until
        self.__dict__.update(extra)

    def wait_until(self, awaitable: Awaitable[Any]) -> None:
        """Let ``awaitable`` finish after the task returns."""
        if self._wait_until is None:
            raise RuntimeError("wait_until is only available while a task runs")
        self._wait_until(awaitable)

    def __repr__(self) -> str:
        extra = {k: v for k, v in self.__dict__.items() if not k.startswith("_")}
        return f"TaskContext({extra!r})"


@dataclass(frozen=True)
class JobInfo:
    """The queued job a run carries out (``event.job``): its id, this
    attempt (from 1, counted across workers and restarts) and the most
    attempts it gets. Delivery is at-least-once: a task that must not act
    twice keys its side effects on ``id``."""

    id: str
    attempt: int
    max_attempts: int


@dataclass(frozen=True)
class TaskEvent:
    """The single argument of a task's ``run`` function.

    ``payload`` is a dict, or the value the task's ``payload_schema``
    returned for it (a pydantic model instance, for example). ``attempt``
    counts from 1 and grows with each retry; ``run_id`` identifies the run
    in the run history (empty outside a registry). ``job`` is set when the
    run carries out a queued job (:func:`taskpack.enqueue_task`), else None.
    """

    name: str
    payload: Any
    context: TaskContext = field(default_factory=TaskContext)
    attempt: int = 1
    run_id: str = ""
    job: JobInfo | None = None


@dataclass(frozen=True, eq=False)
class Task:
    """A task function with its metadata, as returned by :func:`define_task`.

    ``name`` and ``description`` are optional: the name normally comes from
    the file's path under ``tasks/`` and the description from config or the
    ``description=`` literal, both read without importing the module.
    ``options`` are the validated execution options (see
    :mod:`taskpack.options`).
    """

    run: TaskFunction
    name: str | None = None
    description: str | None = None
    options: TaskOptions = DEFAULT_OPTIONS

    @property
    def is_async(self) -> bool:
        """Whether ``run`` returns an awaitable (it then runs on the loop)."""
        return inspect.iscoroutinefunction(self.run) or inspect.iscoroutinefunction(
            getattr(self.run, "__call__", None)  # noqa: B004 - callable objects
        )


@overload
def define_task(
    run: TaskFunction,
    *,
    name: str | None = None,
    description: str | None = None,
    **options: Unpack[OptionArgs],
) -> Task: ...


@overload
def define_task(
    run: None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    **options: Unpack[OptionArgs],
) -> Callable[[TaskFunction], Task]: ...


def define_task(
    run: TaskFunction | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    **options: Unpack[OptionArgs],
) -> Task | Callable[[TaskFunction], Task]:
    """Define a task, as a decorator or as a call.

    ``@define_task`` and ``@define_task(description=...)`` decorate a function
    taking one :class:`TaskEvent`; ``define_task(run=fn, ...)`` wraps ``fn``.
    The function may be sync or async. The execution options (``retries``,
    ``timeout``, ``concurrency``, ``max_concurrency``, the ``on_start`` /
    ``on_success`` / ``on_error`` hooks and ``payload_schema``) are
    described in :func:`taskpack.options.make_options` and the README.
    ``TypeError`` if ``run`` is not callable or an argument has the wrong
    type, ``ValueError`` if an option is out of range; the message names the
    task and the option.
    """
    for key, value in (("name", name), ("description", description)):
        if value is not None and not isinstance(value, str):
            raise TypeError(f"define_task: {key} must be a string, got {type(value).__name__}")

    def build(fn: TaskFunction) -> Task:
        if isinstance(fn, Task):
            raise TypeError("define_task: the function is already a task")
        if not callable(fn):
            raise TypeError(f"define_task: run must be callable, got {type(fn).__name__}")
        label = name or _default_label(fn)
        return Task(run=fn, name=name, description=description,
                    options=make_options(repr(label), **options))

    if run is None:
        return build
    return build(run)


def _default_label(fn: TaskFunction) -> str:
    """How an unnamed task is named in option errors: the task its module is
    being loaded for (``__taskpack_task__``, set by the loader), else
    ``module.function``."""
    module_name = getattr(fn, "__module__", None)
    module = sys.modules.get(module_name) if isinstance(module_name, str) else None
    task_name = getattr(module, "__taskpack_task__", None)
    if isinstance(task_name, str):
        return task_name
    return f"{module_name or '?'}.{getattr(fn, '__qualname__', fn)}"


def as_task(obj: object) -> Task | None:
    """``obj`` if it is a :class:`Task`; a plain callable wrapped; else ``None``."""
    if isinstance(obj, Task):
        return obj
    if callable(obj):
        return Task(run=obj)
    return None


def copy_payload(payload: Mapping[str, Any] | None) -> dict[str, Any]:
    """A fresh dict for one run, so a task cannot mutate its caller's payload."""
    if payload is None:
        return {}
    if type(payload) is dict:  # the common case, without the Mapping ABC's check
        return payload.copy()
    if not isinstance(payload, Mapping):
        raise TypeError(f"payload must be a mapping, got {type(payload).__name__}")
    return dict(payload)
