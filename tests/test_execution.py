"""The execution layer: retries, timeouts, concurrency modes, hooks, schemas,
logging and events, through a real Registry and the real event loop."""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pydantic
import pytest

from taskpack import (
    NonRetryableError,
    PayloadValidationError,
    Registry,
    RetryPolicy,
    RunRecord,
    Task,
    TaskContext,
    TaskEvent,
    TaskTimeoutError,
    define_task,
    events,
)
from tests.helpers import recorded_runs

FAST = RetryPolicy(max_attempts=3, min_delay=0.001, max_delay=0.002)


def registry(*tasks: Task, **kwargs: Any) -> Registry:
    """A registry of ``tasks``, named ``t0``, ``t1``, ..."""
    return Registry.of({f"t{i}": task for i, task in enumerate(tasks)}, **kwargs)


def run(reg: Registry, name: str = "t0", payload: dict[str, Any] | None = None,
        context: Any = None) -> Any:
    return asyncio.run(reg.run(name, payload, context))


def flaky(failures: int, exc: type[Exception] = RuntimeError) -> tuple[list[float], Any]:
    """An async task body failing ``failures`` times, logging when each attempt began."""
    starts: list[float] = []

    async def body(event: TaskEvent) -> str:
        starts.append(time.perf_counter())
        assert event.attempt == len(starts)
        if len(starts) <= failures:
            raise exc(f"failure {len(starts)}")
        return f"ok after {event.attempt}"

    return starts, body


# -- retries -------------------------------------------------------------------


def test_retries_wait_growing_delays() -> None:
    starts, body = flaky(3)
    policy = RetryPolicy(max_attempts=4, factor=2, min_delay=0.05, max_delay=1, jitter=False)
    reg = registry(define_task(body, retries=policy))
    assert run(reg) == "ok after 4"
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    for gap, expected in zip(gaps, (0.05, 0.1, 0.2), strict=True):
        assert expected <= gap < expected + 0.5
    assert gaps[0] < gaps[1] < gaps[2]
    (record,) = recorded_runs(reg, "t0")
    assert (record.outcome, record.attempts, record.error) == ("ok", 4, None)


def test_retries_give_up_with_the_last_error() -> None:
    starts, body = flaky(10)
    reg = registry(define_task(body, retries=FAST))
    with pytest.raises(RuntimeError, match="failure 3"):
        run(reg)
    assert len(starts) == 3
    (record,) = recorded_runs(reg, "t0")
    assert (record.outcome, record.attempts) == ("error", 3)
    assert record.error == "RuntimeError: failure 3"


def test_non_retryable_error_stops_at_once() -> None:
    calls = []

    async def body(event: TaskEvent) -> None:
        calls.append(event.attempt)
        raise NonRetryableError("bad input")

    reg = registry(define_task(body, retries=FAST))
    with pytest.raises(NonRetryableError, match="bad input"):
        run(reg)
    assert calls == [1]
    assert recorded_runs(reg, "t0")[0].attempts == 1


def test_only_retry_on_exceptions_are_retried() -> None:
    starts, body = flaky(10, KeyError)
    policy = RetryPolicy(max_attempts=5, min_delay=0.001, retry_on=(ConnectionError,))
    with pytest.raises(KeyError):
        run(registry(define_task(body, retries=policy)))
    assert len(starts) == 1


def test_each_attempt_gets_a_fresh_copy_of_the_payload() -> None:
    seen = []

    def body(event: TaskEvent) -> None:
        seen.append(dict(event.payload))
        event.payload["spoiled"] = True
        raise RuntimeError("again")

    with pytest.raises(RuntimeError):
        run(registry(define_task(body, retries=FAST)), payload={"n": 1})
    assert seen == [{"n": 1}] * 3


# -- timeouts ------------------------------------------------------------------


def test_timeout_cancels_an_async_attempt_and_the_next_one_starts() -> None:
    log: list[str] = []

    async def body(event: TaskEvent) -> str:
        if event.attempt == 1:
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                log.append("cancelled 1")
                raise
        log.append(f"ran {event.attempt}")
        return "second"

    reg = registry(define_task(body, timeout=0.1, retries=FAST))
    began = time.perf_counter()
    assert run(reg) == "second"
    assert time.perf_counter() - began < 5
    assert log == ["cancelled 1", "ran 2"]
    assert recorded_runs(reg, "t0")[0].attempts == 2


def test_a_run_whose_last_attempt_timed_out_is_a_timeout() -> None:
    async def body(event: TaskEvent) -> None:
        await asyncio.sleep(30)

    reg = registry(define_task(body, timeout=0.05))
    with pytest.raises(TaskTimeoutError) as info:
        run(reg)
    assert info.value.status_code == 504
    assert info.value.message == "Task `t0` timed out after 0.05s (attempt 1)"
    (record,) = recorded_runs(reg, "t0")
    assert (record.outcome, record.attempts) == ("timeout", 1)
    assert 40 <= record.duration_ms < 5000


def test_a_timeout_error_raised_by_the_task_is_not_a_timeout() -> None:
    async def body(event: TaskEvent) -> None:
        raise TimeoutError("upstream")

    reg = registry(define_task(body, timeout=10))
    with pytest.raises(TimeoutError, match="upstream"):
        run(reg)
    assert recorded_runs(reg, "t0")[0].outcome == "error"


def test_sync_task_timeout_stops_waiting_for_the_thread() -> None:
    finished = threading.Event()

    def body(event: TaskEvent) -> None:
        time.sleep(0.5)
        finished.set()

    reg = registry(define_task(body, timeout=0.05))

    async def main() -> float:
        began = time.perf_counter()
        with pytest.raises(TaskTimeoutError):
            await reg.run("t0")
        assert not finished.is_set()  # the thread is still running: it cannot be killed
        return time.perf_counter() - began

    assert asyncio.run(main()) < 0.45
    assert finished.wait(2)


def test_inline_sync_task_overrunning_its_timeout_counts_as_timed_out() -> None:
    attempts = []

    def body(event: TaskEvent) -> str:
        attempts.append(event.attempt)
        if event.attempt == 1:
            time.sleep(0.1)
        return f"attempt {event.attempt}"

    reg = registry(define_task(body, timeout=0.05, retries=FAST), threads=False)
    assert run(reg) == "attempt 2"
    assert attempts == [1, 2]


def test_inline_sync_task_retries_without_threads() -> None:
    started = threading.get_ident()
    seen = []

    def body(event: TaskEvent) -> int:
        seen.append(threading.get_ident())
        if event.attempt < 3:
            raise RuntimeError("again")
        return event.attempt

    assert run(registry(define_task(body, retries=FAST), threads=False)) == 3
    assert seen == [started] * 3


# -- concurrency ---------------------------------------------------------------


class Gauge:
    """Counts how many bodies run at once, and the order they started in."""

    def __init__(self) -> None:
        self.active = 0
        self.peak = 0
        self.order: list[Any] = []

    async def body(self, event: TaskEvent) -> Any:
        self.order.append(event.payload.get("i"))
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            await asyncio.sleep(0.01)
            return event.payload
        finally:
            self.active -= 1


async def gather_calls(reg: Registry, payloads: list[dict[str, Any]]) -> list[Any]:
    return await asyncio.gather(*(reg.run("t0", p) for p in payloads))


def test_dedupe_joins_same_tick_calls_with_options_set() -> None:
    gauge = Gauge()
    reg = registry(define_task(gauge.body, retries=FAST, timeout=5))
    results = asyncio.run(gather_calls(reg, [{"i": n} for n in range(100)]))
    assert gauge.order == [0]
    assert results == [{"i": 0}] * 100
    assert len(recorded_runs(reg, "t0")) == 1


def test_dedupe_payload_joins_only_equal_payloads() -> None:
    gauge = Gauge()
    reg = registry(define_task(gauge.body, concurrency="dedupe_payload"))
    payloads = [{"a": 1, "b": [1, 2]}, {"b": [1, 2], "a": 1}, {"a": 2, "b": [1, 2]},
                {"a": 1, "b": [1, 2]}]
    results = asyncio.run(gather_calls(reg, payloads))
    assert len(gauge.order) == 2
    assert results == [payloads[0], payloads[0], payloads[2], payloads[0]]
    assert results[1] is results[0]  # joined: the very same result
    assert gauge.peak == 2  # the two different payloads ran at the same time


def test_parallel_never_exceeds_max_concurrency() -> None:
    gauge = Gauge()
    reg = registry(define_task(gauge.body, concurrency="parallel", max_concurrency=3))
    results = asyncio.run(gather_calls(reg, [{"i": n} for n in range(50)]))
    assert gauge.peak == 3
    assert gauge.order == list(range(50))  # FIFO
    assert results == [{"i": n} for n in range(50)]
    assert len(recorded_runs(reg, "t0", limit=100)) == 50


def test_parallel_without_limit_runs_everything_at_once() -> None:
    gauge = Gauge()
    reg = registry(define_task(gauge.body, concurrency="parallel"))
    asyncio.run(gather_calls(reg, [{"i": n} for n in range(20)]))
    assert gauge.peak == 20


def test_serial_runs_one_at_a_time_in_call_order() -> None:
    gauge = Gauge()
    reg = registry(define_task(gauge.body, concurrency="serial"))
    asyncio.run(gather_calls(reg, [{"i": n} for n in range(10)]))
    assert (gauge.peak, gauge.order) == (1, list(range(10)))


def test_a_cancelled_waiter_does_not_lose_the_slot() -> None:
    gauge = Gauge()
    reg = registry(define_task(gauge.body, concurrency="serial"))

    async def main() -> None:
        first = asyncio.ensure_future(reg.run("t0", {"i": 1}))
        second = asyncio.ensure_future(reg.run("t0", {"i": 2}))
        third = asyncio.ensure_future(reg.run("t0", {"i": 3}))
        await asyncio.sleep(0)
        second.cancel()
        await asyncio.gather(first, third)
        assert second.cancelled()
        assert await reg.run("t0", {"i": 4}) == {"i": 4}

    asyncio.run(asyncio.wait_for(main(), 5))
    assert gauge.order == [1, 3, 4]


def test_limits_are_per_event_loop_so_sync_callers_work() -> None:
    gauge = Gauge()
    reg = registry(define_task(gauge.body, concurrency="serial"))
    for n in range(3):
        assert run(reg, payload={"i": n}) == {"i": n}


# -- hooks ---------------------------------------------------------------------


class Hooks:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.fail = fail

    def on_start(self, event: TaskEvent) -> None:
        self.calls.append(("start", event.attempt))
        if self.fail:
            raise RuntimeError("start hook broke")

    async def on_success(self, event: TaskEvent, result: Any) -> None:
        await asyncio.sleep(0)
        self.calls.append(("success", (event.attempt, result)))
        if self.fail:
            raise RuntimeError("success hook broke")

    def on_error(self, event: TaskEvent, exc: BaseException) -> None:
        self.calls.append(("error", (event.attempt, str(exc))))
        if self.fail:
            raise RuntimeError("error hook broke")

    def options(self) -> dict[str, Any]:
        return {"on_start": self.on_start, "on_success": self.on_success,
                "on_error": self.on_error}


def test_hooks_run_once_per_run() -> None:
    hooks = Hooks()
    _, body = flaky(2)
    assert run(registry(define_task(body, retries=FAST, **hooks.options()))) == "ok after 3"
    assert hooks.calls == [("start", 1), ("success", (3, "ok after 3"))]


def test_on_error_runs_once_after_the_last_attempt() -> None:
    hooks = Hooks()
    _, body = flaky(10)
    with pytest.raises(RuntimeError):
        run(registry(define_task(body, retries=FAST, **hooks.options())))
    assert hooks.calls == [("start", 1), ("error", (3, "failure 3"))]


def test_joined_calls_do_not_repeat_hooks() -> None:
    hooks = Hooks()
    gauge = Gauge()
    reg = registry(define_task(gauge.body, **hooks.options()))
    asyncio.run(gather_calls(reg, [{}] * 10))
    assert [name for name, _ in hooks.calls] == ["start", "success"]


def test_hook_errors_are_logged_and_never_change_the_outcome(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, "taskpack.execution")
    hooks = Hooks(fail=True)
    _, ok_body = flaky(0)
    assert run(registry(define_task(ok_body, **hooks.options()))) == "ok after 1"
    _, bad_body = flaky(10)
    with pytest.raises(RuntimeError, match="failure 1"):
        run(registry(define_task(bad_body, **hooks.options())))
    failed = [r.getMessage() for r in caplog.records if r.name == "taskpack.execution"]
    assert failed == [
        "task=t0 hook=on_start failed (the run's outcome is unchanged)",
        "task=t0 hook=on_success failed (the run's outcome is unchanged)",
        "task=t0 hook=on_start failed (the run's outcome is unchanged)",
        "task=t0 hook=on_error failed (the run's outcome is unchanged)",
    ]


# -- payload schemas -------------------------------------------------------------


class Order(pydantic.BaseModel):
    id: int
    email: str
    items: list[str] = []


def test_pydantic_schema_rejects_before_any_attempt() -> None:
    hooks = Hooks()
    calls = []

    def body(event: TaskEvent) -> None:
        calls.append(event)

    reg = registry(define_task(body, payload_schema=Order, retries=FAST, **hooks.options()))
    with pytest.raises(PayloadValidationError) as info:
        run(reg, payload={"id": "seven", "items": [1]})
    exc = info.value
    assert exc.status_code == 422
    assert [(e["field"], e["type"]) for e in exc.errors] == [
        ("id", "int_parsing"), ("email", "missing"), ("items.0", "string_type")]
    assert exc.details() == {"errors": exc.errors}
    assert exc.message.startswith("Task `t0`: invalid payload: id: Input should be a valid integer")
    assert calls == [] and hooks.calls == []
    (record,) = recorded_runs(reg, "t0")
    assert (record.outcome, record.attempts) == ("invalid", 0)


def test_the_task_receives_the_validated_object() -> None:
    async def body(event: TaskEvent) -> Any:
        assert isinstance(event.payload, Order)
        return event.payload.model_dump()

    reg = registry(define_task(body, payload_schema=Order))
    assert run(reg, payload={"id": "7", "email": "a@b"}) == {"id": 7, "email": "a@b", "items": []}


def test_callable_schema() -> None:
    def positive(payload: dict[str, Any]) -> int:
        n = int(payload.get("n", 0))
        if n <= 0:
            raise ValueError("n must be positive")
        return n

    reg = registry(define_task(lambda event: event.payload * 2, payload_schema=positive))
    assert run(reg, payload={"n": "21"}) == 42
    with pytest.raises(PayloadValidationError) as info:
        run(reg, payload={"n": -1})
    assert info.value.errors == [{"field": None, "message": "n must be positive",
                                  "type": "value_error"}]


# -- history records, logging, events ---------------------------------------------


def test_records_carry_trigger_hash_and_duration() -> None:
    async def body(event: TaskEvent) -> None:
        await asyncio.sleep(0.05)

    reg = registry(define_task(body))
    before = time.time()
    run(reg, payload={"b": 1, "a": 2}, context=TaskContext(trigger="schedule:* * * * *"))
    run(reg, payload={"a": 2, "b": 1}, context={"trigger": "http"})
    newest, oldest = recorded_runs(reg, "t0")
    assert (oldest.trigger, newest.trigger) == ("schedule:* * * * *", "http")
    assert oldest.payload_hash == newest.payload_hash and len(oldest.payload_hash) == 16
    assert oldest.id != newest.id
    assert before <= oldest.started_at < oldest.finished_at <= time.time()
    assert 50 <= oldest.duration_ms < 2000
    assert abs((oldest.finished_at - oldest.started_at) * 1000 - oldest.duration_ms) < 1


def test_one_log_line_per_run_and_one_per_retried_attempt(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "taskpack")
    _, body = flaky(1)
    policy = RetryPolicy(max_attempts=2, min_delay=0.001, jitter=False)
    run(registry(define_task(body, retries=policy)), context={"trigger": "http"})
    with pytest.raises(RuntimeError):
        run(registry(define_task(flaky(5)[1])))
    retried, first, second = caplog.records
    assert (retried.name, retried.levelno) == ("taskpack.execution", logging.WARNING)
    assert retried.getMessage().startswith("attempt failed, retrying: task=t0 run_id=")
    assert ("attempt=1 max_attempts=2 trigger=http outcome=error duration_ms="
            in retried.getMessage())
    assert retried.getMessage().endswith('error="RuntimeError: failure 1" retry_in_s=0.001')
    assert (first.name, first.levelno) == ("taskpack.run", logging.INFO)
    assert first.getMessage().startswith("task=t0 trigger=http outcome=ok attempts=2 ")
    fields = first.taskpack  # type: ignore[attr-defined]
    assert fields["outcome"] == "ok" and fields["attempts"] == 2
    assert (second.name, second.levelno) == ("taskpack.run", logging.ERROR)
    assert second.getMessage().startswith("task=t0 trigger=manual outcome=error attempts=1 ")
    assert second.getMessage().endswith('error="RuntimeError: failure 1"')
    assert second.exc_info and isinstance(second.exc_info[1], RuntimeError)


@pytest.fixture
def subscription() -> Iterator[list[RunRecord]]:
    seen: list[RunRecord] = []
    unsubscribe = events.on_run_finished(seen.append)
    yield seen
    unsubscribe()


def test_run_finished_subscribers_see_every_run(subscription: list[RunRecord]) -> None:
    gauge = Gauge()
    reg = registry(define_task(gauge.body))
    asyncio.run(gather_calls(reg, [{}] * 5))
    with pytest.raises(PayloadValidationError):
        run(registry(define_task(gauge.body, payload_schema=Order)))
    assert [(r.task, r.outcome) for r in subscription] == [("t0", "ok"), ("t0", "invalid")]
    assert subscription[0] == recorded_runs(reg, "t0")[0]


def test_subscriber_errors_are_logged_and_unsubscribe_works(
        caplog: pytest.LogCaptureFixture) -> None:
    seen: list[str] = []

    def broken(run_: RunRecord) -> None:
        raise ValueError("metrics backend down")

    async def shipped(run_: RunRecord) -> None:
        seen.append(run_.outcome)

    stop_broken = events.on_run_finished(broken)
    stop_shipped = events.on_run_finished(shipped)
    try:
        async def main() -> Any:
            result = await registry(define_task(lambda e: 5)).run("t0")
            await asyncio.sleep(0.01)
            return result

        assert asyncio.run(main()) == 5
    finally:
        stop_broken()
        stop_shipped()
    assert seen == ["ok"]
    assert "run_finished callback" in caplog.text and "metrics backend down" in caplog.text
    run(registry(define_task(lambda e: 5)))
    assert seen == ["ok"]
    with pytest.raises(TypeError):
        events.on_run_finished("nope")  # type: ignore[arg-type]


def test_cancelled_run_is_recorded_as_cancelled() -> None:
    async def body(event: TaskEvent) -> None:
        await asyncio.sleep(30)

    reg = registry(define_task(body))

    async def main() -> None:
        call = asyncio.ensure_future(reg.run("t0"))
        await asyncio.sleep(0.01)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call

    asyncio.run(main())
    (record,) = recorded_runs(reg, "t0")
    assert (record.outcome, record.error) == ("cancelled", "CancelledError")


@pytest.mark.parametrize("options", [
    {}, {"concurrency": "dedupe_payload"}, {"concurrency": "serial"},
    {"concurrency": "parallel"}, {"max_concurrency": 2},
])
def test_is_running_in_every_mode(options: dict[str, Any]) -> None:
    gauge = Gauge()
    reg = registry(define_task(gauge.body, **options))

    async def main() -> None:
        assert not reg.is_running("t0")
        calls = [asyncio.ensure_future(reg.run("t0", {"i": n})) for n in range(3)]
        await asyncio.sleep(0)
        assert reg.is_running("t0")
        await asyncio.gather(*calls)
        assert not reg.is_running("t0")
        assert not reg.is_running("unknown")

    asyncio.run(main())
