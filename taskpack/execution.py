"""The execution policy: how one task's runs are carried out under its options.

The registry loads a task and hands it, with its merged options, to a
:class:`Runner`; the runner knows nothing about loading. One call of
:meth:`Runner.submit` goes through:

1. the concurrency gate (:mod:`taskpack.concurrency`): join a running call,
   or wait for a slot;
2. payload validation (``payload_schema``): a rejected payload raises
   :class:`~taskpack.errors.PayloadValidationError` before any attempt and
   before ``on_start``;
3. ``on_start(event)``, then attempts until one succeeds, the retry policy
   gives up, or an error is not retryable; each attempt gets a fresh event
   (``event.attempt`` counts from 1) and at most ``timeout`` seconds;
4. ``on_success(event, result)`` or ``on_error(event, exc)`` once, with the
   last attempt's event;
5. one :class:`~taskpack.store.RunRecord` to the ``record`` callback (the
   registry's store and :mod:`taskpack.events`), with the payload, the
   result or the failure's traceback, and the host that ran it.

A queued job's attempt (:meth:`Runner.run_job`, called by the worker of
:mod:`taskpack.queue`) goes through the same steps with one attempt per
call: the job's retries are the queue's (persisted, so they survive
restarts), so the runner only says whether and when the job should be tried
again (:class:`JobAttempt`). ``on_start`` runs before a job's first attempt,
``on_error`` after its last; each attempt is one history record with the
job's trigger. A job never joins a running call (``dedupe`` would hand it
another payload's result); limits (``serial``, ``max_concurrency``) apply.

Hooks may be sync (called on the loop: keep them short) or async; an
exception inside a hook is logged and never changes the outcome.

Timeouts: an async attempt is cancelled. A sync attempt in a worker thread
cannot be killed: the caller stops waiting and the thread runs on unobserved
(a retry may then overlap it). A sync attempt run inline (``threads=False``,
as under Pyodide) blocks the loop, so nothing can interrupt it; when it
returns after its deadline its result is discarded and the attempt counts as
timed out, so the outcome is the same on every platform.

Logging (see :mod:`taskpack.logs`): each run is one ``key=value`` line on
the ``taskpack.run`` logger when it ends (the fields are also on the record
as ``record.taskpack``): INFO when it succeeded, WARNING when the payload was
refused or the run was cancelled, ERROR when it failed or timed out (a failure carries its
traceback). A failed attempt that will be retried is a WARNING line on
``taskpack.execution``.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import inspect
import itertools
import logging
import os
import socket
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from . import logs
from .concurrency import DirectGate, LimitGate, canonical_json, make_gate
from .errors import PayloadValidationError, TaskAbortedError, TaskTimeoutError
from .logs import FIELDS, RUN_LOGGER, logfmt, logfmt_value
from .options import TaskOptions
from .schema import SchemaError
from .store import Outcome, RunRecord
from .task import JobInfo, Task, TaskContext, TaskEvent
from .threads import DaemonThreadPool

logger = logging.getLogger(__name__)
run_logger = logging.getLogger(RUN_LOGGER)
_LEVELS: dict[Outcome, int] = {"ok": logging.INFO, "invalid": logging.WARNING,
                               "cancelled": logging.WARNING, "error": logging.ERROR,
                               "timeout": logging.ERROR}

TASK_THREADS = DaemonThreadPool(min(32, (os.cpu_count() or 1) + 4), "taskpack-task")
"""The threads sync tasks run in (as many as asyncio's default executor).
Daemon threads: a task that never returns cannot keep the process alive
once the server has given up waiting for it (``shutdown_grace``)."""

MakeContext = Callable[[Any], TaskContext]
Record = Callable[[RunRecord], None]


@dataclass(frozen=True)
class JobAttempt:
    """How one attempt of a queued job ended: ``ok`` with the task's
    ``result``, or a failure with ``error`` (``"Type: message"``) and its
    ``traceback``; ``retry_in`` is the backoff before the next attempt, or
    None when the failure is final (last attempt, :class:`NonRetryableError`,
    an error the policy does not retry, a payload the schema refuses)."""

    ok: bool
    result: Any = None
    error: str | None = None
    traceback: str | None = None
    retry_in: float | None = None


class Runner:
    """Runs one task under its options (see the module docstring).

    ``make_context`` turns the caller's context argument into a
    :class:`TaskContext`; ``record`` receives each finished run; sync
    functions run in a worker thread unless ``threads`` is false.
    """

    def __init__(self, name: str, task: Task, options: TaskOptions, *, threads: bool,
                 make_context: MakeContext, record: Record) -> None:
        self.name = name
        self.options = options
        self.threads = threads
        self._fn = task.run
        self._is_async = task.is_async
        self._gate = make_gate(options)
        self._job_gate = self._gate if isinstance(self._gate, LimitGate) else DirectGate()
        self._make_context = make_context
        self._record = record

    def is_running(self) -> bool:
        """Whether a run is in flight on the running event loop."""
        return self._gate.is_running()

    async def submit(self, payload: dict[str, Any], context: Any) -> Any:
        """Run the task for ``payload`` (or join a run), return its result."""
        return await self._gate.run(payload, lambda: self._run(payload, context))

    async def _run(self, payload: dict[str, Any], context: Any) -> Any:
        options = self.options
        ctx = self._make_context(context)
        run_id = new_run_id()
        started, clock = time.time(), time.perf_counter()
        attempt = 0
        outcome: Outcome = "error"
        error: BaseException | None = None
        result: Any = None
        try:
            value: Any = payload
            if options.validate is not None:
                try:
                    value = options.validate(payload)
                except SchemaError as exc:
                    outcome = "invalid"
                    error = PayloadValidationError(self.name, exc.errors)
                    raise error from None
            fresh = options.retry.max_attempts > 1 and isinstance(value, dict)
            event = TaskEvent(self.name, dict(value) if fresh else value, ctx, 1, run_id)
            if options.on_start is not None:
                await _call_hook(self.name, "on_start", options.on_start, event)
            while True:
                attempt += 1
                began = time.perf_counter()
                try:
                    result = await self._attempt(event)
                except Exception as exc:
                    error = exc
                    outcome = "timeout" if isinstance(exc, TaskTimeoutError) else "error"
                    retry = options.retry
                    if attempt >= retry.max_attempts or not retry.retries(exc):
                        if options.on_error is not None:
                            await _call_hook(self.name, "on_error", options.on_error, event, exc)
                        raise
                    delay = retry.delay(attempt)
                    self._log_retry(event, began, outcome, exc, delay)
                    await asyncio.sleep(delay)
                    event = replace(event, payload=dict(value) if fresh else value,
                                    attempt=attempt + 1)
                    continue
                outcome, error = "ok", None
                if options.on_success is not None:
                    await _call_hook(self.name, "on_success", options.on_success, event, result)
                return result
        except asyncio.CancelledError as exc:  # the server stopped waiting (shutdown)
            error, outcome = exc, "cancelled"
            raise
        except BaseException as exc:  # anything the loop did not see
            if error is None:
                error, outcome = exc, "error"
            raise
        finally:
            duration = time.perf_counter() - clock
            run = run_record(run_id, self.name, ctx.trigger, payload, started, duration,
                             attempt, outcome, error, result, None)
            self._record(run)
            level = _LEVELS[outcome]
            if run_logger.isEnabledFor(level):
                traced = outcome == "error" and isinstance(error, Exception)
                log_run(run, level, error if traced else None)

    async def run_job(self, payload: dict[str, Any], context: Any, job: JobInfo) -> JobAttempt:
        """Carry out attempt ``job.attempt`` of a queued job (see the module
        docstring); the task's own exceptions end up in the answer."""
        answer: JobAttempt = await self._job_gate.run(
            payload, lambda: self._run_job(payload, context, job))
        return answer

    async def _run_job(self, payload: dict[str, Any], context: Any, job: JobInfo) -> JobAttempt:
        options = self.options
        ctx = self._make_context(context)
        run_id = new_run_id()
        started, clock = time.time(), time.perf_counter()
        attempts = 0
        outcome: Outcome = "error"
        error: BaseException | None = None
        result: Any = None
        retry_in: float | None = None
        try:
            value: Any = payload
            if options.validate is not None:
                try:
                    value = options.validate(payload)
                except SchemaError as exc:
                    outcome = "invalid"
                    error = PayloadValidationError(self.name, exc.errors)
                    return JobAttempt(False, error=describe(error))
            attempts = job.attempt
            event = TaskEvent(self.name, value, ctx, job.attempt, run_id, job)
            if job.attempt == 1 and options.on_start is not None:
                await _call_hook(self.name, "on_start", options.on_start, event)
            try:
                result = await self._attempt(event)
            except Exception as exc:
                error = exc
                outcome = "timeout" if isinstance(exc, TaskTimeoutError) else "error"
                final = job.attempt >= job.max_attempts or not options.retry.retries(exc)
                retry_in = None if final else options.retry.delay(job.attempt)
                if final and options.on_error is not None:
                    await _call_hook(self.name, "on_error", options.on_error, event, exc)
                return JobAttempt(False, error=describe(exc),
                                  traceback="".join(traceback.format_exception(exc)),
                                  retry_in=retry_in)
            outcome = "ok"
            if options.on_success is not None:
                await _call_hook(self.name, "on_success", options.on_success, event, result)
            return JobAttempt(True, result=result)
        except asyncio.CancelledError as exc:  # the worker stopped waiting (shutdown)
            error, outcome = exc, "cancelled"
            raise
        except BaseException as exc:  # a failing hook machinery
            if error is None:
                error, outcome = exc, "error"
            raise
        finally:
            duration = time.perf_counter() - clock
            run = run_record(run_id, self.name, ctx.trigger, payload, started, duration,
                             attempts, outcome, error, result, job.id)
            self._record(run)
            # One line per job attempt (each is a run): a failure that will be
            # retried is a WARNING with the delay, the last one an ERROR.
            level = _LEVELS[outcome] if retry_in is None else logging.WARNING
            if run_logger.isEnabledFor(level):
                traced = outcome == "error" and isinstance(error, Exception)
                more: dict[str, Any] = {"job": job.id, "max_attempts": job.max_attempts}
                if retry_in is not None:
                    more["retry_in_s"] = round(retry_in, 3)
                log_run(run, level, error if traced and retry_in is None else None, more)

    async def _attempt(self, event: TaskEvent) -> Any:
        """One attempt, limited to ``timeout`` seconds. Whatever the task
        raises is the run's failure: an exception that is not an
        :class:`Exception` (``SystemExit``...) becomes :class:`TaskAbortedError`."""
        try:
            if self._is_async and self.options.timeout is None:  # the common case, inline
                return await self._fn(event)
            return await self._attempt_once(event)
        except (Exception, asyncio.CancelledError):
            raise
        except BaseException as exc:
            raise TaskAbortedError(exc) from exc

    async def _attempt_once(self, event: TaskEvent) -> Any:
        timeout = self.options.timeout
        if self._is_async:
            assert timeout is not None  # without one, :meth:`_attempt` awaits the task itself
            return await self._limited(self._fn(event), event, timeout)
        if self.threads:
            if timeout is None:
                return await in_task_thread(self._fn, event)
            return await self._limited(in_task_thread(self._fn, event), event, timeout)
        began = time.perf_counter()
        result = self._fn(event)
        if inspect.isawaitable(result):
            if timeout is None:
                return await result
            remaining = max(timeout - (time.perf_counter() - began), 0.0)
            return await self._limited(result, event, remaining, reported=timeout)
        if timeout is not None and time.perf_counter() - began > timeout:
            raise TaskTimeoutError(self.name, timeout, event.attempt)
        return result

    async def _limited(self, awaitable: Awaitable[Any], event: TaskEvent, timeout: float,
                       reported: float | None = None) -> Any:
        """``awaitable`` within ``timeout`` seconds. An async task that blocks
        the loop keeps the timer from firing; when it returns after its
        deadline its result is discarded and the attempt timed out, as for
        an inline sync task."""
        limit = asyncio.timeout(timeout)
        began = time.perf_counter()
        try:
            async with limit:
                result = await awaitable
        except TimeoutError:
            if limit.expired():
                raise TaskTimeoutError(self.name, reported or timeout, event.attempt) from None
            raise
        if time.perf_counter() - began > timeout:
            raise TaskTimeoutError(self.name, reported or timeout, event.attempt)
        return result

    def _log_retry(self, event: TaskEvent, began: float, outcome: Outcome,
                   exc: BaseException, retry_in: float, max_attempts: int | None = None) -> None:
        if not logger.isEnabledFor(logging.WARNING):
            return
        fields: dict[str, Any] = {
            "task": self.name,
            "run_id": event.run_id,
            "attempt": event.attempt,
            "max_attempts": max_attempts or self.options.retry.max_attempts,
            "trigger": event.context.trigger,
            **({"job": event.job.id} if event.job is not None else {}),
            "outcome": outcome,
            "duration_ms": round((time.perf_counter() - began) * 1000, 3),
            "error": describe(exc),
            "retry_in_s": round(retry_in, 3),
        }
        logger.warning("attempt failed, retrying: %s", logfmt(fields), extra={FIELDS: fields})


class _RunIds:
    """Run ids: 16 random hex digits per process (drawn again in a forked
    child, see :func:`_after_fork`) and a 16-digit counter, unique across
    processes without a system call per run."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.prefix = os.urandom(8).hex()
        self.count = itertools.count()

    def __call__(self) -> str:
        return f"{self.prefix}{next(self.count):016x}"


new_run_id = _RunIds()
"""The id of a new run: 32 hex digits, unique across processes."""


def log_run(run: RunRecord, level: int, exc: BaseException | None = None,
            more: dict[str, Any] | None = None) -> None:
    """The run's one line on ``taskpack.run`` (``exc`` adds its traceback;
    ``more`` adds fields after the run's own, with other keys, e.g. a queued
    job's id): its structured fields (``record.taskpack``) and their
    ``logfmt`` as the message (see :func:`_run_message`)."""
    duration_ms = round(run.duration_ms, 3)
    logs.log(run_logger, level, lambda: _run_message(run, duration_ms, more),
             lambda: _run_fields(run, duration_ms, more), exc)


def _run_fields(run: RunRecord, duration_ms: float, more: dict[str, Any] | None) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "task": run.task,
        "trigger": run.trigger,
        "outcome": run.outcome,
        "attempts": run.attempts,
        "duration_ms": duration_ms,
        "run_id": run.id,
    }
    if more:
        fields.update(more)
    if run.error is not None:
        fields["error"] = run.error
    return fields


_heads: dict[tuple[str, str, str], str] = {}
"""The start of run lines, up to ``attempts=``, by task name, trigger and
outcome (a few of each: each is quoted once, see :func:`_run_message`)."""
_MAX_HEADS = 1024


def _run_message(run: RunRecord, duration_ms: float, more: dict[str, Any] | None) -> str:
    """``logfmt`` of a run's fields, as :func:`log_run` orders them. An
    integer or a float never needs quoting, nor a run id of letters and
    digits; the task name, trigger and outcome are quoted once per
    combination, then found in :data:`_heads`."""
    key = (run.task, run.trigger, run.outcome)
    head = _heads.get(key)
    if head is None:
        head = (f"task={logfmt_value(run.task)} trigger={logfmt_value(run.trigger)} "
                f"outcome={logfmt_value(run.outcome)} attempts=")
        if len(_heads) < _MAX_HEADS:
            _heads[key] = head
    message = (f"{head}{run.attempts} duration_ms={duration_ms} "
               f"run_id={run.id if run.id.isalnum() else logfmt_value(run.id)}")
    if more:
        message += " " + logfmt(more)
    if run.error is not None:
        message += " error=" + logfmt_value(run.error)
    return message


def in_task_thread(fn: Callable[[TaskEvent], Any], event: TaskEvent) -> Awaitable[Any]:
    """``fn(event)`` in one of :data:`TASK_THREADS` (the caller's context
    variables copied, as :func:`asyncio.to_thread` does)."""
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()
    return loop.run_in_executor(TASK_THREADS, context.run, _in_thread, fn, event)


def _in_thread(fn: Callable[[TaskEvent], Any], event: TaskEvent) -> Any:
    """Call a sync task in a worker thread. An exception that is not an
    :class:`Exception` becomes :class:`TaskAbortedError` here, in the
    thread: a ``GeneratorExit`` carried by a future would be re-raised by
    asyncio's own machinery outside the run."""
    try:
        return fn(event)
    except Exception:
        raise
    except BaseException as exc:
        raise TaskAbortedError(exc) from exc


async def _call_hook(task: str, which: str, hook: Callable[..., Any], *args: Any) -> None:
    """Call a lifecycle hook; its exceptions (``SystemExit`` included) are
    logged, never raised. Cancellation passes."""
    try:
        result = hook(*args)
        if inspect.isawaitable(result):
            await result
    except asyncio.CancelledError:
        raise
    except BaseException:
        logger.exception("task=%s hook=%s failed (the run's outcome is unchanged)", task, which)


_EMPTY_HASH = hashlib.sha256(b"{}").hexdigest()[:16]


def payload_hash(payload: Any) -> str:
    """16 hex digits of the SHA-256 of the payload's canonical JSON."""
    if not payload and isinstance(payload, dict):
        return _EMPTY_HASH
    text = canonical_json(payload)  # a lone surrogate is hashed, not an error
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def run_record(run_id: str, task: str, trigger: str, payload: Any, started: float,
               duration: float, attempts: int, outcome: Outcome, error: BaseException | None,
               result: Any, job_id: str | None) -> RunRecord:
    """The history record of a finished run (a failure's traceback and no
    result; a success's result)."""
    return RunRecord(
        run_id, task, trigger, payload_hash(payload), started, started + duration,
        duration * 1000, attempts, outcome, None if error is None else describe(error),
        host_name(), payload, None if error is not None else result,
        None if error is None else "".join(traceback.format_exception(error)), job_id)


_host = ""


def host_name() -> str:
    """``hostname:pid`` of this process (a run's ``host``)."""
    global _host
    if not _host:
        _host = f"{socket.gethostname()}:{os.getpid()}"
    return _host


def _after_fork() -> None:
    """A forked child (a cluster worker) draws its own run id prefix and
    names its own pid."""
    global _host
    _host = ""
    new_run_id.reset()


if hasattr(os, "register_at_fork"):  # not on Windows or Pyodide, which cannot fork
    os.register_at_fork(after_in_child=_after_fork)


def describe(exc: BaseException) -> str:
    """``"TypeName: message"`` for the history and the logs (for a
    :class:`TaskAbortedError`, of what the task raised)."""
    if isinstance(exc, TaskAbortedError):
        exc = exc.original
    message = getattr(exc, "message", None) or str(exc)
    name = type(exc).__name__
    return f"{name}: {message}" if message else name
