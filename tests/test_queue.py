"""The queue in one process: enqueue checks, the worker loop, retries, dead
letters, spawn, roles. Real stores (memory and SQLite), the real event loop;
the multi-process and PostgreSQL behaviour is in test_queue_processes.py."""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pydantic
import pytest

from taskpack import (
    NonRetryableError,
    PayloadValidationError,
    Registry,
    RetryPolicy,
    RunRecord,
    TaskEvent,
    TaskNotFoundError,
    define_task,
    events,
    set_registry,
)
from taskpack.queue import (
    QueueUnavailableError,
    RoleError,
    Worker,
    bind_queue,
    enqueue_task,
    enqueue_task_sync,
    role_from_env,
    spawn_task,
)
from taskpack.store import FireClaim, Job, NewJob, Store, StoreUnavailable, backend_for
from tests.pg import fresh_database

FAST = RetryPolicy(max_attempts=3, min_delay=0.05, max_delay=0.05, jitter=False)


async def open_store(url: str, root: Path) -> Store:
    store = backend_for(url)(url, root=root)
    await store.open()
    return store


@asynccontextmanager
async def queue(tasks: dict[str, Any], root: Path, url: str = "memory://", *,
                worker: bool = True, **options: Any) -> AsyncIterator[tuple[Registry, Store]]:
    """A registry of ``tasks`` over the store at ``url``, bound as the queue,
    with a running worker (unless ``worker=False``)."""
    store = await open_store(url, root)
    registry = Registry.of(tasks, root, store=store)
    set_registry(registry)
    bind_queue(store)
    running = Worker(registry, store, poll=0.05, **options) if worker else None
    if running is not None:
        running.start()
    try:
        yield registry, store
    finally:
        if running is not None:
            await running.stop(5)
        bind_queue(None)
        set_registry(None)
        await store.close()


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def finished(store: Store, job_id: str, timeout: float = 20.0) -> Job:
    async def done() -> bool:
        job = await store.get_job(job_id)
        return job is not None and job.status in ("succeeded", "failed", "cancelled")

    await until(done, timeout)
    job = await store.get_job(job_id)
    assert job is not None
    return job


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def url(request: pytest.FixtureRequest) -> Iterator[str]:
    """Each backend: memory, a SQLite file, a fresh PostgreSQL database."""
    if request.param == "postgres":
        with fresh_database() as database:
            yield database
    else:
        yield {"memory": "memory://", "sqlite": "sqlite:///.taskpack/store.sqlite"}[request.param]


# -- enqueue: checked in the caller ---------------------------------------------------


def test_enqueue_refuses_unknown_tasks_bad_payloads_and_bad_times(tmp_path: Path) -> None:
    class Numbered(pydantic.BaseModel):
        n: int

    tasks = {"typed": define_task(lambda e: e.payload.n, payload_schema=Numbered)}

    async def main() -> None:
        async with queue(tasks, tmp_path, worker=False) as (_, store):
            with pytest.raises(TaskNotFoundError, match="Task `nope` is not available!"):
                await enqueue_task("nope")
            with pytest.raises(PayloadValidationError) as refused:
                await enqueue_task("typed", {"n": "x"})
            assert refused.value.errors[0]["field"] == "n"
            with pytest.raises(TypeError, match="JSON"):
                await enqueue_task("typed", {"n": 1, "when": object()})
            with pytest.raises(ValueError, match="not both"):
                await enqueue_task("typed", {"n": 1}, delay=1, run_at=time.time())
            with pytest.raises(ValueError, match="negative"):
                await enqueue_task("typed", {"n": 1}, delay=-1)
            job = await enqueue_task("typed", {"n": 1}, delay=60)
            assert job.status == "pending" and job.run_at > time.time() + 50
            assert (await store.job_counts())["pending"] == 1
        with pytest.raises(QueueUnavailableError, match="no job queue"):
            await enqueue_task("typed", {"n": 1})

    asyncio.run(main())


# -- the worker ------------------------------------------------------------------------------


def test_worker_runs_jobs_with_event_job_and_records_job_runs(tmp_path: Path, url: str) -> None:
    seen: list[tuple[str, int, str]] = []
    runs: list[RunRecord] = []

    async def body(event: TaskEvent) -> dict[str, Any]:
        assert event.job is not None
        seen.append((event.job.id, event.job.attempt, event.context.trigger))
        return {"double": event.payload["n"] * 2}

    async def main() -> None:
        async with queue({"double": define_task(body)}, tmp_path, url) as (_, store):
            jobs = [await enqueue_task("double", {"n": n}) for n in range(20)]
            done = [await finished(store, job.id) for job in jobs]
        assert [job.status for job in done] == ["succeeded"] * 20
        assert [job.result for job in done] == [{"double": n * 2} for n in range(20)]
        assert all(job.attempts == 1 and job.locked_by is None for job in done)
        assert sorted(seen) == sorted((job.id, 1, "job") for job in jobs)

    stop = events.on_run_finished(runs.append)
    try:
        asyncio.run(main())
    finally:
        stop()
    assert len(runs) == 20 and {run.trigger for run in runs} == {"job"}


def test_failures_retry_with_backoff_then_succeed_or_dead_letter(tmp_path: Path) -> None:
    attempts: dict[str, list[float]] = {}
    hooks: list[str] = []

    def flaky(event: TaskEvent) -> str:
        assert event.job is not None
        attempts.setdefault(event.payload["id"], []).append(time.monotonic())
        if event.job.attempt < event.payload["succeed_at"]:
            raise RuntimeError(f"boom {event.job.attempt}")
        return "ok"

    task = define_task(flaky, retries=FAST, on_error=lambda e, exc: hooks.append(str(exc)),
                       on_start=lambda e: hooks.append("start"))

    async def main() -> None:
        async with queue({"flaky": task}, tmp_path) as (_, store):
            good = await enqueue_task("flaky", {"id": "good", "succeed_at": 3})
            bad = await enqueue_task("flaky", {"id": "bad", "succeed_at": 99})
            good_job = await finished(store, good.id)
            bad_job = await finished(store, bad.id)
        assert good_job.status == "succeeded" and good_job.attempts == 3
        assert bad_job.status == "failed" and bad_job.attempts == 3
        assert bad_job.last_error == "RuntimeError: boom 3"
        assert bad_job.traceback is not None and "in flaky" in bad_job.traceback

    asyncio.run(main())
    for key in ("good", "bad"):
        gaps = [b - a for a, b in zip(attempts[key], attempts[key][1:], strict=False)]
        assert len(gaps) == 2 and all(gap >= 0.045 for gap in gaps), gaps
    assert hooks.count("start") == 2 and hooks.count("boom 3") == 1  # on_error after the last


def test_non_retryable_error_fails_at_once(tmp_path: Path) -> None:
    def refuse(event: TaskEvent) -> None:
        raise NonRetryableError("card declined")

    async def main() -> None:
        async with queue({"pay": define_task(refuse, retries=FAST)}, tmp_path) as (_, store):
            job = await finished(store, (await enqueue_task("pay")).id)
        assert job.status == "failed" and job.attempts == 1
        assert job.last_error == "NonRetryableError: card declined"

    asyncio.run(main())


def test_retry_time_is_stored_so_it_survives_a_restart(tmp_path: Path) -> None:
    """A failed attempt's next run_at is in the store: a new worker on the
    same SQLite file picks the job up after the backoff, not before."""
    slow = RetryPolicy(max_attempts=2, min_delay=1.5, max_delay=1.5, jitter=False)
    calls: list[float] = []

    def fail_once(event: TaskEvent) -> str:
        calls.append(time.time())
        if len(calls) == 1:
            raise RuntimeError("first")
        return "second"

    tasks = {"once": define_task(fail_once, retries=slow)}
    url = "sqlite:///.taskpack/store.sqlite"

    async def first() -> str:
        async with queue(tasks, tmp_path, url) as (_, store):
            job = await enqueue_task("once")

            async def retried() -> bool:
                current = await store.get_job(job.id)
                return current is not None and current.attempts == 1 and \
                    current.status == "pending"

            await until(retried)
            current = await store.get_job(job.id)
            assert current is not None and current.run_at >= calls[0] + 1.4
            assert current.last_error == "RuntimeError: first"
            return job.id

    async def second(job_id: str) -> Job:
        async with queue(tasks, tmp_path, url) as (_, store):
            return await finished(store, job_id)

    job_id = asyncio.run(first())
    job = asyncio.run(second(job_id))
    assert job.status == "succeeded" and job.attempts == 2 and job.result == "second"
    assert calls[1] - calls[0] >= 1.4


def test_concurrency_limits_running_jobs(tmp_path: Path) -> None:
    peak = 0
    current = 0

    async def body(event: TaskEvent) -> None:
        nonlocal peak, current
        current += 1
        peak = max(peak, current)
        await asyncio.sleep(0.02)
        current -= 1

    async def main() -> None:
        async with queue({"t": define_task(body, concurrency="parallel")}, tmp_path,
                         concurrency=3) as (_, store):
            jobs = [await enqueue_task("t", {"i": i}) for i in range(12)]
            for job in jobs:
                await finished(store, job.id)

    asyncio.run(main())
    assert peak == 3


def test_jobs_of_a_dedupe_task_never_join_each_other(tmp_path: Path) -> None:
    """The default `dedupe` mode joins concurrent calls; two jobs with
    different payloads must each run with their own."""
    async def body(event: TaskEvent) -> int:
        await asyncio.sleep(0.05)
        return int(event.payload["n"])

    async def main() -> None:
        async with queue({"t": define_task(body)}, tmp_path) as (_, store):
            jobs = [await enqueue_task("t", {"n": n}) for n in range(5)]
            results = [(await finished(store, job.id)).result for job in jobs]
        assert results == [0, 1, 2, 3, 4]

    asyncio.run(main())


def test_worker_rides_out_a_store_that_is_down_and_logs_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Fault injection around a real store: claims fail for a while."""
    failing = {"on": True}

    async def main() -> None:
        store = await open_store("memory://", tmp_path)
        real_claim = store.claim

        async def claim(worker: str, limit: int, lease: float = 30.0) -> list[Job]:
            if failing["on"]:
                raise StoreUnavailable("connection refused (127.0.0.1:1)")
            return await real_claim(worker, limit, lease)

        store.claim = claim  # type: ignore[method-assign]
        registry = Registry.of({"t": define_task(lambda e: "ran")}, tmp_path, store=store)
        set_registry(registry)
        bind_queue(store)
        worker = Worker(registry, store, poll=0.05)
        worker.start()
        job = await enqueue_task("t")
        await asyncio.sleep(1.0)  # several failed claims
        assert (await store.get_job(job.id)).status == "pending"  # type: ignore[union-attr]
        failing["on"] = False
        assert (await finished(store, job.id)).status == "succeeded"
        await worker.stop(5)
        bind_queue(None)
        set_registry(None)

    with caplog.at_level(logging.INFO, "taskpack.queue"):
        asyncio.run(main())
    downs = [r for r in caplog.records if "store unavailable" in r.getMessage()]
    backs = [r for r in caplog.records if "store is back" in r.getMessage()]
    assert len(downs) == 1 and len(backs) == 1


def test_stop_waits_for_running_jobs_within_grace(tmp_path: Path) -> None:
    async def body(event: TaskEvent) -> str:
        await asyncio.sleep(float(event.payload["s"]))
        return "done"

    async def main() -> None:
        store = await open_store("memory://", tmp_path)
        registry = Registry.of({"sleep": define_task(body, concurrency="parallel")}, tmp_path,
                               store=store)
        set_registry(registry)
        bind_queue(store)
        worker = Worker(registry, store, poll=0.05)
        worker.start()
        short = await enqueue_task("sleep", {"s": 0.3})
        long = await enqueue_task("sleep", {"s": 30})
        await until(lambda: _status(store, long.id, "running"))
        began = time.monotonic()
        await worker.stop(1.0)
        assert time.monotonic() - began < 5
        assert (await store.get_job(short.id)).status == "succeeded"  # type: ignore[union-attr]
        cut = await store.get_job(long.id)
        assert cut is not None and cut.status == "running"  # reclaimed after its lease
        bind_queue(None)
        set_registry(None)

    asyncio.run(main())


async def _status(store: Store, job_id: str, status: str) -> bool:
    job = await store.get_job(job_id)
    return job is not None and job.status == status


def test_job_changes_are_published(tmp_path: Path) -> None:
    seen: list[tuple[str, str]] = []
    stop = events.on_job_changed(lambda job: seen.append((job.id, job.status)))

    async def main() -> str:
        async with queue({"t": define_task(lambda e: 1)}, tmp_path) as (_, store):
            job = await enqueue_task("t")
            await finished(store, job.id)
            await asyncio.sleep(0.05)
            return job.id

    try:
        job_id = asyncio.run(main())
    finally:
        stop()
    assert [status for jid, status in seen if jid == job_id] == \
        ["pending", "running", "succeeded"]


def test_enqueue_task_sync_from_a_sync_task_in_a_worker_thread(tmp_path: Path) -> None:
    threads: list[str] = []

    def parent(event: TaskEvent) -> str:
        threads.append(threading.current_thread().name)
        return enqueue_task_sync("child", {"from": "parent"}).id

    async def main() -> None:
        tasks = {"parent": define_task(parent), "child": define_task(lambda e: e.payload)}
        async with queue(tasks, tmp_path) as (_, store):
            job = await finished(store, (await enqueue_task("parent")).id)
            child = await finished(store, job.result)
        assert child.status == "succeeded" and child.result == {"from": "parent"}
        with pytest.raises(RuntimeError, match="await enqueue_task"):
            enqueue_task_sync("child")

    asyncio.run(main())
    assert threads and threads[0] != "MainThread"


# -- spawn ------------------------------------------------------------------------------------


def test_spawn_never_swallows_an_error(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    errors: list[str] = []
    runs: list[RunRecord] = []

    def explode(event: TaskEvent) -> None:
        raise ValueError("spawned and broken")

    tasks = {"explode": define_task(explode, on_error=lambda e, exc: errors.append(str(exc))),
             "fine": define_task(lambda e: e.payload["x"])}

    async def main() -> None:
        registry = Registry.of(tasks, tmp_path)
        set_registry(registry)
        with pytest.raises(TaskNotFoundError):
            spawn_task("missing")
        broken = spawn_task("explode")
        fine = spawn_task("fine", {"x": 7})
        assert await fine == 7
        with pytest.raises(ValueError, match="spawned and broken"):
            await broken
        await registry.drain(5)
        set_registry(None)

    stop = events.on_run_finished(runs.append)
    try:
        with caplog.at_level(logging.ERROR, "taskpack.queue"):
            asyncio.run(main())
    finally:
        stop()
    assert errors == ["spawned and broken"]
    assert {run.trigger for run in runs} == {"spawn"}
    failed = [r for r in caplog.records if "spawned task explode failed" in r.getMessage()]
    assert len(failed) == 1 and failed[0].exc_info is not None


def test_spawned_runs_are_waited_for_at_drain(tmp_path: Path) -> None:
    finished_runs: list[str] = []

    async def slow(event: TaskEvent) -> None:
        await asyncio.sleep(0.2)
        finished_runs.append("slow")

    async def main() -> None:
        registry = Registry.of({"slow": define_task(slow)}, tmp_path)
        spawn_task("slow", registry=registry)
        await registry.drain(5)  # what a server's shutdown does within shutdown_grace

    asyncio.run(main())
    assert finished_runs == ["slow"]


# -- roles ------------------------------------------------------------------------------------


def test_roles_from_env() -> None:
    assert role_from_env({}) == "all"
    assert role_from_env({"TASKPACK_ROLE": "Worker"}) == "worker"
    assert role_from_env({"TASKPACK_ROLE": "web"}) == "web"
    with pytest.raises(RoleError, match="TASKPACK_ROLE: expected one of web, worker, all"):
        role_from_env({"TASKPACK_ROLE": "cron"})


# -- keys, named queues, priority ---------------------------------------------------------


def test_keys_replace_or_preserve_a_pending_job(tmp_path: Path, url: str) -> None:
    async def main() -> None:
        async with queue({"t": define_task(lambda e: e.payload)}, tmp_path, url,
                         worker=False) as (_, store):
            first = await enqueue_task("t", {"v": 1}, key="k", delay=60)
            replaced = await enqueue_task("t", {"v": 2}, key="k", delay=30)
            kept = await enqueue_task("t", {"v": 3}, key="k", key_mode="preserve")
            assert replaced.id == first.id == kept.id
            job = await store.get_job(first.id)
            assert job is not None and job.payload == {"v": 2}
            assert job.run_at < first.run_at  # the replacement's time
            assert (await store.job_counts())["pending"] == 1

    asyncio.run(main())


def test_a_named_queue_runs_one_job_at_a_time_across_two_workers(
        tmp_path: Path, url: str) -> None:
    spans: list[tuple[float, float]] = []

    async def body(event: TaskEvent) -> None:
        began = time.monotonic()
        await asyncio.sleep(0.03)
        spans.append((began, time.monotonic()))

    async def main() -> None:
        async with queue({"t": define_task(body, concurrency="parallel")}, tmp_path,
                         url) as (registry, store):
            second = Worker(registry, store, poll=0.05)
            second.start()
            jobs = [await enqueue_task("t", {"i": i}, queue="serial") for i in range(8)]
            for job in jobs:
                await finished(store, job.id)
            await second.stop(5)

    asyncio.run(main())
    spans.sort()
    assert len(spans) == 8
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in itertools.pairwise(spans))


def test_lower_priority_runs_first(tmp_path: Path) -> None:
    order: list[int] = []

    async def main() -> None:
        async with queue({"t": define_task(lambda e: order.append(e.payload["p"]))}, tmp_path,
                         worker=False) as (registry, store):
            for p in (5, 1, 3):
                await enqueue_task("t", {"p": p}, priority=p)
            worker = Worker(registry, store, concurrency=1, poll=0.05)
            worker.start()
            await until(lambda: _counted(store, 3))
            await worker.stop(5)

    asyncio.run(main())
    assert order == [1, 3, 5]


async def _counted(store: Store, n: int) -> bool:
    return (await store.job_counts())["succeeded"] >= n


def test_jobs_a_schedule_fire_created_run_like_any_other(tmp_path: Path, url: str) -> None:
    """The scheduler of many hosts stores a won fire's tasks as jobs
    (trigger ``schedule:<cron>``, payload ``{"scheduledTime": ms}``); the
    worker runs them as it runs every job, the trigger kept in the history."""
    seen: list[tuple[Any, str, int]] = []
    runs: list[RunRecord] = []

    def report(event: TaskEvent) -> None:
        assert event.job is not None
        seen.append((event.payload, event.context.trigger, event.job.attempt))

    async def main() -> None:
        async with queue({"report": define_task(report)}, tmp_path, url) as (_, store):
            fire = NewJob(task="report", payload={"scheduledTime": 1_764_158_400_000},
                          run_at=time.time(), trigger="schedule:0 * * * *")
            assert await store.claim_fire(FireClaim("s1", 1_764_158_400_000, (fire,)), "h1")
            await until(lambda: _counted(store, 1))
            await store.flush(5)

    stop = events.on_run_finished(runs.append)
    try:
        asyncio.run(main())
    finally:
        stop()
    assert seen == [({"scheduledTime": 1_764_158_400_000}, "schedule:0 * * * *", 1)]
    assert [(run.trigger, run.job_id is not None) for run in runs] == \
        [("schedule:0 * * * *", True)]
