"""The scheduler with a store: fires become claims with jobs (DESIGN §11).

Schedulers share a real in-memory store in one event loop, as processes
share a database; the jobs a won claim stores are read back through the
store's API (no worker runs them here: tests/test_many_hosts.py does, in
real processes). A store that fails on demand (a subclass of the memory
store) stands in for a database that goes away.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from taskpack import define_task
from taskpack.registry import Registry, ScheduleEntry
from taskpack.scheduler import Scheduler
from taskpack.store import FireClaim, Job, Store, StoreUnavailable, backend_for
from tests.helpers import all_jobs, fire_seconds_of

EVERY_SECOND = "* * * * * *"


def registry(tmp_path: Path) -> Registry:
    tasks = {"tick": define_task(lambda event: None),
             "keep": define_task(lambda event: None, backfill="1m", retries=2)}
    return Registry.of(tasks, tmp_path, schedules=(ScheduleEntry(EVERY_SECOND, ("tick", "keep")),))


def memory_store(tmp_path: Path) -> Store:
    return backend_for("memory://")("memory://", root=tmp_path)


class FlakyStore(backend_for("memory://")):  # type: ignore[misc]
    """The memory store, refusing claims and reads while ``down``."""

    down = False
    broken_once = False

    async def claim_fire(self, claim: FireClaim, host: str) -> bool:
        if self.down:
            raise StoreUnavailable("connection refused (test)")
        if self.broken_once:
            self.broken_once = False
            raise RuntimeError("a bug in the store (test)")
        won: bool = await super().claim_fire(claim, host)
        return won

    async def last_fire(self, schedule: str) -> int | None:
        if self.down:
            raise StoreUnavailable("connection refused (test)")
        last: int | None = await super().last_fire(schedule)
        return last


def one_span(counts: Counter[int]) -> bool:
    return bool(counts) and sorted(counts) == list(range(min(counts), max(counts) + 1))


def run(main: Any) -> Any:
    return asyncio.run(main())


def test_schedulers_sharing_a_store_claim_each_fire_once(tmp_path: Path) -> None:
    reg = registry(tmp_path)
    store = memory_store(tmp_path)

    async def main() -> list[Job]:
        await store.open()
        schedulers = [Scheduler(reg, store=store, host=f"host{i}:1") for i in range(3)]
        for scheduler in schedulers:
            scheduler.start()
        await asyncio.sleep(3.5)
        for scheduler in schedulers:
            await scheduler.stop(1)
        return await all_jobs(store)

    jobs = run(main)
    for task in ("tick", "keep"):
        counts = fire_seconds_of(jobs, task)
        assert len(counts) >= 3 and set(counts.values()) == {1}, counts
        assert one_span(counts)
    job = next(j for j in jobs if j.task == "keep")
    assert job.trigger == f"schedule:{EVERY_SECOND}"
    assert job.run_at == job.payload["scheduledTime"] / 1000
    assert job.max_attempts == 3  # the task's retries=2 travel with the job
    assert set(job.payload) == {"scheduledTime"}


def test_missed_fires_after_downtime_follow_each_tasks_backfill(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    reg = registry(tmp_path)
    store = memory_store(tmp_path)

    async def main() -> tuple[list[Job], float, float]:
        await store.open()
        first = Scheduler(reg, store=store)
        first.start()
        await asyncio.sleep(1.6)
        await first.stop(1)
        down = time.time()
        await asyncio.sleep(4)
        up = time.time()
        second = Scheduler(reg, store=store)
        second.start()
        await asyncio.sleep(1.6)
        await second.stop(1)
        return await all_jobs(store), down, up

    with caplog.at_level(logging.INFO, logger="taskpack.scheduler"):
        jobs, down, up = run(main)
    keep, tick = fire_seconds_of(jobs, "keep"), fire_seconds_of(jobs, "tick")
    assert set(keep.values()) == {1} and one_span(keep), keep  # every second, once
    assert set(tick.values()) == {1}
    gap = set(range(int(down) + 1, int(up) - 1))
    assert len(gap) >= 2 and gap <= set(keep) and not gap & set(tick), (gap, tick)
    messages = [r.getMessage() for r in caplog.records]
    assert any("missed fire(s) while no scheduler ran run now (backfill)" in m
               for m in messages), messages
    assert any("fires missed while no scheduler ran, not run" in m and "tick" in m
               for m in messages), messages


def test_a_new_schedule_never_backfills(tmp_path: Path) -> None:
    reg = registry(tmp_path)
    store = memory_store(tmp_path)

    async def main() -> tuple[list[Job], float]:
        await store.open()
        started = time.time()
        scheduler = Scheduler(reg, store=store)
        scheduler.start()
        await asyncio.sleep(1.5)
        await scheduler.stop(1)
        return await all_jobs(store), started

    jobs, started = run(main)
    assert jobs and all(job.payload["scheduledTime"] / 1000 > started - 1.5 for job in jobs)


def test_store_outage_is_retried_and_its_fires_follow_backfill(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    reg = registry(tmp_path)
    store = FlakyStore("memory://", root=tmp_path)

    async def main() -> tuple[list[Job], float, float, dict[str, Any]]:
        await store.open()
        scheduler = Scheduler(reg, store=store)
        scheduler.start()
        await asyncio.sleep(1.5)
        store.down = True
        down = time.time()
        await asyncio.sleep(3.2)
        during = scheduler.status()
        store.down = False
        up = time.time()
        await asyncio.sleep(2.5)
        await scheduler.stop(1)
        return await all_jobs(store), down, up, during

    with caplog.at_level(logging.INFO, logger="taskpack.scheduler"):
        jobs, down, up, during = run(main)
    assert during["store"] == "unavailable" and "connection refused" in during["error"]
    keep, tick = fire_seconds_of(jobs, "keep"), fire_seconds_of(jobs, "tick")
    assert set(keep.values()) == {1} and set(tick.values()) == {1}
    outage = set(range(int(down) + 1, int(up)))
    assert outage <= set(keep), (outage, keep)
    assert not outage & set(tick), (outage, tick)
    assert one_span(keep)
    messages = [r.getMessage() for r in caplog.records]
    assert sum("store unavailable" in m for m in messages) == 1, messages
    assert sum("store available again" in m for m in messages) == 1, messages
    assert any("while the store was unavailable, not run" in m for m in messages), messages


def test_an_unexpected_error_is_logged_and_the_schedule_goes_on(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    reg = registry(tmp_path)
    store = FlakyStore("memory://", root=tmp_path)
    store.broken_once = True

    async def main() -> list[Job]:
        await store.open()
        scheduler = Scheduler(reg, store=store)
        scheduler.start()
        await asyncio.sleep(3.5)
        await scheduler.stop(1)
        return await all_jobs(store)

    with caplog.at_level(logging.INFO, logger="taskpack.scheduler"):
        jobs = run(main)
    errors = [r for r in caplog.records if "scheduler error" in r.getMessage()]
    assert len(errors) == 1 and errors[0].exc_info, caplog.text
    assert "a bug in the store" in caplog.text
    tick = fire_seconds_of(jobs, "tick")
    assert set(tick.values()) == {1} and one_span(tick), tick  # the failed fire was retried
