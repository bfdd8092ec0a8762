"""Task options: validation at definition time, retry delays, config overrides."""

from __future__ import annotations

import random
from typing import Any

import pydantic
import pytest

from taskpack import RetryPolicy, TaskEvent, define_task
from taskpack.options import DEFAULT_OPTIONS, apply_overrides, make_options


async def noop(event: TaskEvent) -> None:
    return None


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"retries": "3"}, TypeError, "option retries: expected an int or a RetryPolicy, got str"),
    ({"retries": True}, TypeError, "option retries: expected an int or a RetryPolicy, got bool"),
    ({"retries": -1}, ValueError, "option retries: must be >= 0, got -1"),
    ({"timeout": "30"}, TypeError, "option timeout: expected seconds as a number, got str"),
    ({"timeout": 0}, ValueError, "option timeout: must be a positive number of seconds, got 0"),
    ({"timeout": float("inf")}, ValueError, "option timeout: must be a positive number"),
    ({"concurrency": "queue"}, ValueError,
     "option concurrency: expected one of 'dedupe', 'dedupe_payload', 'serial', 'parallel'"),
    ({"max_concurrency": 0}, ValueError, "option max_concurrency: must be >= 1, got 0"),
    ({"max_concurrency": 2.5}, TypeError, "option max_concurrency: expected an int, got float"),
    ({"concurrency": "dedupe", "max_concurrency": 3}, ValueError,
     "option max_concurrency: only applies to concurrency='parallel', not 'dedupe'"),
    ({"concurrency": "serial", "max_concurrency": 2}, ValueError,
     "only applies to concurrency='parallel', not 'serial'"),
    ({"on_start": "log"}, TypeError, "option on_start: expected a function, got str"),
    ({"on_success": lambda event: None}, TypeError, "option on_success: must accept two"),
    ({"on_error": lambda: None}, TypeError, "option on_error: must accept two arguments"),
    ({"payload_schema": {"a": int}}, TypeError, "option payload_schema: expected a pydantic"),
    ({"payload_schema": int}, TypeError, "option payload_schema: expected a pydantic"),
    ({"retry": 3}, TypeError, "option retry: unknown option (known: retries, timeout,"),
])
def test_bad_options_name_task_and_option(kwargs: dict[str, Any], error: type[Exception],
                                          message: str) -> None:
    with pytest.raises(error) as info:
        define_task(name="db:migrate", **kwargs)(noop)
    assert str(info.value).startswith("task 'db:migrate': ")
    assert message in str(info.value)


def test_unnamed_tasks_are_named_by_their_function() -> None:
    with pytest.raises(ValueError, match=r"task 'tests\.test_options\.noop': option timeout"):
        define_task(run=noop, timeout=-1)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"max_attempts": 0}, "max_attempts must be an integer >= 1, got 0"),
    ({"factor": 0.5}, "factor must be >= 1, got 0.5"),
    ({"min_delay": -1}, "min_delay must be a finite number >= 0, got -1"),
    ({"min_delay": 5, "max_delay": 1}, "max_delay (1) is below min_delay (5)"),
    ({"retry_on": ValueError}, "retry_on must be a tuple of exception classes"),
    ({"retry_on": (ValueError, "x")}, "retry_on must be a tuple of exception classes"),
])
def test_retry_policy_validation(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as info:
        RetryPolicy(**kwargs)
    assert message in str(info.value)


def test_defaults_are_nitros_behaviour() -> None:
    task = define_task(noop)
    assert task.options is DEFAULT_OPTIONS
    assert (task.options.retry.max_attempts, task.options.timeout,
            task.options.concurrency) == (1, None, "dedupe")


def test_option_forms() -> None:
    opts = define_task(retries=3, timeout=30, max_concurrency=4)(noop).options
    assert opts.retry == RetryPolicy(max_attempts=4)
    assert opts.timeout == 30.0
    assert (opts.concurrency, opts.max_concurrency) == ("parallel", 4)
    policy = RetryPolicy(max_attempts=5, min_delay=0.1)
    assert define_task(retries=policy)(noop).options.retry is policy
    serial = define_task(concurrency="serial", max_concurrency=1)(noop)
    assert serial.options.concurrency == "serial"


def test_backoff_grows_exponentially_up_to_max_delay() -> None:
    policy = RetryPolicy(max_attempts=10, factor=2, min_delay=1.0, max_delay=10.0, jitter=False)
    assert [policy.delay(n) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_full_jitter_stays_within_the_exponential_cap() -> None:
    policy = RetryPolicy(factor=3, min_delay=0.5, max_delay=100.0)
    rng = random.Random(7)
    for attempt in range(1, 6):
        cap = 0.5 * 3 ** (attempt - 1)
        samples = [policy.delay(attempt, rng) for _ in range(200)]
        assert all(0 <= s <= cap for s in samples)
        assert max(samples) > cap * 0.8  # spread over the whole range, not clustered
        assert min(samples) < cap * 0.2


def test_retry_on_and_non_retryable() -> None:
    from taskpack import NonRetryableError

    policy = RetryPolicy(retry_on=(ConnectionError,))
    assert policy.retries(ConnectionResetError())
    assert not policy.retries(ValueError())
    assert not RetryPolicy().retries(NonRetryableError("stop"))
    assert not RetryPolicy().retries(KeyboardInterrupt())


def test_config_overrides_win() -> None:
    policy = RetryPolicy(max_attempts=2, min_delay=0.25, retry_on=(OSError,))
    code = make_options("'x'", retries=policy, timeout=5, concurrency="parallel",
                        max_concurrency=3)
    merged = apply_overrides("'x'", code, {"retries": 4, "timeout": 1.5})
    assert merged.retry == RetryPolicy(max_attempts=5, min_delay=0.25, retry_on=(OSError,))
    assert merged.timeout == 1.5
    assert merged.max_concurrency == 3
    serial = apply_overrides("'x'", code, {"concurrency": "serial"})
    assert (serial.concurrency, serial.max_concurrency) == ("serial", None)
    limited = apply_overrides("'x'", DEFAULT_OPTIONS, {"max_concurrency": 2})
    assert (limited.concurrency, limited.max_concurrency) == ("parallel", 2)
    assert apply_overrides("'x'", code, {}) is code


def test_config_overrides_are_validated() -> None:
    with pytest.raises(ValueError, match="config cannot set option 'on_start'"):
        apply_overrides("'x'", DEFAULT_OPTIONS, {"on_start": print})
    with pytest.raises(ValueError, match="task 'x': option timeout: must be a positive"):
        apply_overrides("'x'", DEFAULT_OPTIONS, {"timeout": -3})


def test_pydantic_models_and_callables_are_schemas() -> None:
    class Payload(pydantic.BaseModel):
        n: int

    assert define_task(payload_schema=Payload)(noop).options.validate is not None
    assert define_task(payload_schema=lambda p: p)(noop).options.validate is not None
