"""Task options: what ``define_task`` accepts beside the function, validated once.

:func:`make_options` turns the keyword arguments of ``define_task`` into a
frozen :class:`TaskOptions`, raising ``TypeError``/``ValueError`` that name
the task and the option. :func:`apply_overrides` lays the per-task config
table (``[tasks."x"] retries = 3``) over them: config wins. The execution
layer (:mod:`taskpack.execution`) only ever reads a :class:`TaskOptions`.
"""

from __future__ import annotations

import inspect
import math
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypedDict, Unpack, get_args

from .errors import NonRetryableError
from .schema import PayloadSchema, compile_schema

Concurrency = Literal["dedupe", "dedupe_payload", "serial", "parallel"]
CONCURRENCY_MODES: tuple[str, ...] = get_args(Concurrency)

Hook = Callable[..., Any]
"""A lifecycle hook; sync or async. ``on_start(event)``,
``on_success(event, result)``, ``on_error(event, exc)``."""

HOOKS = ("on_start", "on_success", "on_error")

CONFIG_OPTIONS = ("retries", "timeout", "concurrency", "max_concurrency", "backfill")
"""The options a config file may set per task (hooks and schemas are code)."""


def _not_int(value: Any) -> bool:
    return isinstance(value, bool) or not isinstance(value, int)


def _not_number(value: Any) -> bool:
    return isinstance(value, bool) or not isinstance(value, int | float)


def _kind(value: Any) -> str:
    return type(value).__name__


@dataclass(frozen=True)
class RetryPolicy:
    """How often a failed attempt is retried, and how long to wait between.

    ``max_attempts`` counts the first attempt (``1`` means no retry). Before
    attempt ``n + 1`` the run waits ``min(max_delay, min_delay * factor ** (n - 1))``
    seconds; with ``jitter`` ("full jitter") a uniformly random time between
    0 and that. Only exceptions that are instances of ``retry_on`` are
    retried; :class:`~taskpack.errors.NonRetryableError` never is. A timed
    out attempt raises :class:`~taskpack.errors.TaskTimeoutError`, which the
    default ``retry_on=(Exception,)`` retries.
    """

    max_attempts: int = 3
    factor: float = 2
    min_delay: float = 1.0
    max_delay: float = 60.0
    jitter: bool = True
    retry_on: tuple[type[BaseException], ...] = (Exception,)

    def __post_init__(self) -> None:
        problem = self._problem()
        if problem is not None:
            raise ValueError(f"RetryPolicy: {problem}")

    def _problem(self) -> str | None:
        if _not_int(self.max_attempts) or self.max_attempts < 1:
            return f"max_attempts must be an integer >= 1, got {self.max_attempts!r}"
        for key in ("factor", "min_delay", "max_delay"):
            value = getattr(self, key)
            if _not_number(value) or value < 0 or not math.isfinite(value):
                return f"{key} must be a finite number >= 0, got {value!r}"
        if self.factor < 1:
            return f"factor must be >= 1, got {self.factor!r}"
        if self.max_delay < self.min_delay:
            return f"max_delay ({self.max_delay!r}) is below min_delay ({self.min_delay!r})"
        jitter: Any = self.jitter
        if not isinstance(jitter, bool):
            return f"jitter must be true or false, got {jitter!r}"
        retry_on = self.retry_on
        if not isinstance(retry_on, tuple) or not all(
            isinstance(t, type) and issubclass(t, BaseException) for t in retry_on
        ):
            return f"retry_on must be a tuple of exception classes, got {retry_on!r}"
        return None

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based)."""
        cap = min(self.max_delay, self.min_delay * self.factor ** (attempt - 1))
        if not self.jitter:
            return cap
        return (rng or _rng).uniform(0, cap)

    def retries(self, exc: BaseException) -> bool:
        """Whether ``exc`` may be retried (attempts left aside)."""
        return isinstance(exc, self.retry_on) and not isinstance(exc, NonRetryableError)


NO_RETRY = RetryPolicy(max_attempts=1)

_rng = random.Random()


@dataclass(frozen=True)
class TaskOptions:
    """A task's validated options; the defaults are Nitro's behaviour.

    ``validate`` is the compiled ``payload_schema`` (payload in, validated
    value out, :class:`~taskpack.schema.SchemaError` when invalid), ``None``
    without a schema. ``backfill`` is the window, in seconds, in which the
    scheduled fires missed while no scheduler could claim them are run
    late, oldest first (``None``: missed fires are logged, never run; see
    :mod:`taskpack.scheduler`). ``source`` keeps the arguments as given, so config
    overrides can be re-validated against them.
    """

    retry: RetryPolicy = NO_RETRY
    timeout: float | None = None
    concurrency: Concurrency = "dedupe"
    max_concurrency: int | None = None
    on_start: Hook | None = None
    on_success: Hook | None = None
    on_error: Hook | None = None
    validate: Callable[[Any], Any] | None = None
    backfill: float | None = None
    source: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


DEFAULT_OPTIONS = TaskOptions()


class OptionArgs(TypedDict, total=False):
    """The execution options ``define_task`` takes as keywords; ``None``
    means "not given"."""

    retries: int | RetryPolicy | None
    timeout: float | None
    concurrency: str | None
    max_concurrency: int | None
    on_start: Hook | None
    on_success: Hook | None
    on_error: Hook | None
    payload_schema: PayloadSchema | None
    backfill: str | float | None


OPTION_NAMES = tuple(OptionArgs.__annotations__)


def make_options(label: str, **options: Unpack[OptionArgs]) -> TaskOptions:
    """Validate ``define_task``'s options for the task called ``label``.

    ``retries=n`` (an int) means up to ``n`` retries after the first attempt
    with the default backoff; a :class:`RetryPolicy` is taken as it is.
    ``max_concurrency`` without ``concurrency`` means ``"parallel"``.
    ``TypeError`` for a value of the wrong type, ``ValueError`` for one out
    of range; both name the task and the option.
    """
    def fail(kind: type[Exception], option: str, problem: str) -> Exception:
        return kind(f"task {label}: option {option}: {problem}")

    for key in options:
        if key not in OPTION_NAMES:
            raise fail(TypeError, key, f"unknown option (known: {', '.join(OPTION_NAMES)})")
    source: dict[str, Any] = {key: value for key, value in options.items() if value is not None}
    if not source:
        return DEFAULT_OPTIONS
    retries = options.get("retries")
    timeout = options.get("timeout")
    concurrency = options.get("concurrency")
    max_concurrency = options.get("max_concurrency")
    payload_schema = options.get("payload_schema")
    backfill = options.get("backfill")

    retry = NO_RETRY
    if isinstance(retries, RetryPolicy):
        retry = retries
    elif retries is not None:
        if _not_int(retries):
            raise fail(TypeError, "retries",
                       f"expected an int or a RetryPolicy, got {_kind(retries)}")
        if retries < 0:
            raise fail(ValueError, "retries", f"must be >= 0, got {retries}")
        retry = RetryPolicy(max_attempts=retries + 1)

    if timeout is not None:
        if _not_number(timeout):
            raise fail(TypeError, "timeout", f"expected seconds as a number, got {_kind(timeout)}")
        if not (timeout > 0 and math.isfinite(timeout)):
            raise fail(ValueError, "timeout",
                       f"must be a positive number of seconds, got {timeout}")

    mode = concurrency
    if mode is None:
        mode = "parallel" if max_concurrency is not None else "dedupe"
    elif mode not in CONCURRENCY_MODES:
        raise fail(ValueError, "concurrency",
                   f"expected one of {', '.join(map(repr, CONCURRENCY_MODES))}, got {mode!r}")
    if max_concurrency is not None:
        if _not_int(max_concurrency):
            raise fail(TypeError, "max_concurrency",
                       f"expected an int, got {_kind(max_concurrency)}")
        if max_concurrency < 1:
            raise fail(ValueError, "max_concurrency", f"must be >= 1, got {max_concurrency}")
        if mode != "parallel" and not (mode == "serial" and max_concurrency == 1):
            raise fail(ValueError, "max_concurrency",
                       f"only applies to concurrency='parallel', not {mode!r}")

    for hook_name in HOOKS:
        hook = source.get(hook_name)
        if hook is not None and not callable(hook):
            raise fail(TypeError, hook_name, f"expected a function, got {_kind(hook)}")
        if hook is not None and not _accepts(hook, 1 if hook_name == "on_start" else 2):
            count = "one argument (event)" if hook_name == "on_start" else "two arguments"
            raise fail(TypeError, hook_name, f"must accept {count}")

    window = None
    if backfill is not None:
        try:
            window = parse_duration(backfill)
        except (TypeError, ValueError) as exc:
            raise fail(type(exc), "backfill", str(exc)) from None

    validate = None
    if payload_schema is not None:
        try:
            validate = compile_schema(payload_schema)
        except TypeError as exc:
            raise fail(TypeError, "payload_schema", str(exc)) from None

    return TaskOptions(
        retry=retry,
        timeout=float(timeout) if timeout is not None else None,
        concurrency=mode,  # type: ignore[arg-type]  # checked against CONCURRENCY_MODES
        max_concurrency=max_concurrency,
        on_start=options.get("on_start"),
        on_success=options.get("on_success"),
        on_error=options.get("on_error"),
        validate=validate,
        backfill=window,
        source=source,
    )


def apply_overrides(label: str, options: TaskOptions, overrides: Mapping[str, Any]) -> TaskOptions:
    """``options`` with the config table ``overrides`` laid over them (config wins).

    ``retries = n`` keeps the code's backoff settings and changes only the
    number of attempts; setting ``concurrency`` in config drops a
    ``max_concurrency`` given in code, and ``max_concurrency`` alone means
    ``concurrency = "parallel"``. ``ValueError`` for an option config
    may not set, ``TypeError``/``ValueError`` for a bad value.
    """
    if not overrides:
        return options
    unknown = sorted(set(overrides) - set(CONFIG_OPTIONS))
    if unknown:
        raise ValueError(f"task {label}: config cannot set option {unknown[0]!r} "
                         f"(settable: {', '.join(CONFIG_OPTIONS)})")
    merged = dict(options.source)
    if "concurrency" in overrides:
        merged.pop("max_concurrency", None)
    elif "max_concurrency" in overrides:
        merged["concurrency"] = "parallel"
    merged.update(overrides)
    code_retries = options.source.get("retries")
    if isinstance(code_retries, RetryPolicy) and "retries" in overrides:
        count = overrides["retries"]
        if _not_int(count) or count < 0:
            raise TypeError(f"task {label}: option retries: expected an int >= 0, got {count!r}")
        merged["retries"] = replace(code_retries, max_attempts=count + 1)
    return make_options(label, **merged)


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(d|h|m|s)")
_UNIT_SECONDS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}


def parse_duration(value: Any) -> float:
    """Seconds in a duration: a number of seconds, or a string of
    ``<number><unit>`` parts with units ``d``, ``h``, ``m``, ``s``
    (``"2h"``, ``"1h30m"``, ``"90s"``). ``TypeError`` for another type,
    ``ValueError`` for a string that is not one or a duration that is not
    positive and finite."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError(f"expected a duration such as '2h' or a number of seconds, "
                        f"got {_kind(value)}")
    if isinstance(value, str):
        text = value.strip().lower()
        parts = _DURATION.findall(text)
        if not text or _DURATION.sub("", text).strip():
            raise ValueError(f"expected a duration such as '2h', '30m' or '1h30m', got {value!r}")
        seconds = sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)
    else:
        seconds = float(value)
    if not (seconds > 0 and math.isfinite(seconds)):
        raise ValueError(f"must be a positive duration, got {value!r}")
    return seconds


def _accepts(fn: Callable[..., Any], count: int) -> bool:
    """Whether ``fn`` can be called with ``count`` positional arguments
    (``True`` when its signature cannot be read)."""
    try:
        inspect.signature(fn).bind(*range(count))
    except TypeError:
        return False
    except ValueError:
        return True
    return True
