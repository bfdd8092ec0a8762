"""The run buffer every backend shares (issue 14: history writes off the
request path, batched, bounded memory, flushed at shutdown; issue 11 item
1: every wait on it is bounded). A real SQLite file whose write lock another
connection holds stands for a store that is slow or stuck."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskpack.store import RunRecord
from taskpack.store.buffer import BATCH, RunBuffer
from taskpack.store.sqlite import SQLiteStore


def run(n: int) -> RunRecord:
    return RunRecord(f"r{n}", f"t{n % 3}", "http", "0" * 16, 1.0, 2.0, 1.0, 1, "ok",
                     payload={"n": n}, result=n)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    yield SQLiteStore("sqlite:///store.sqlite", root=tmp_path, busy_timeout=0.2)


def lock(path: Path) -> sqlite3.Connection:
    """Another connection holding the store's write lock."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    return conn


def count(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        found: int = conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    conn.close()
    return found


def test_recording_never_waits_for_the_database(store: SQLiteStore) -> None:
    async def main() -> float:
        await store.open()
        holder = lock(store.path)
        try:
            started = time.perf_counter()
            for n in range(2000):
                store.record_run(run(n))
            took = time.perf_counter() - started
            assert not await store.flush(0.3)  # bounded: the lock holds the runs back
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert await store.flush(30)
        assert (await store.health())["lost_runs"] == 0
        await store.close()
        return took

    took = asyncio.run(main())
    assert took < 1.0, f"recording 2,000 runs took {took:.2f}s"
    assert count(store.path) == 2000


def test_a_full_buffer_drops_new_runs_counts_them_and_says_so_once(
        store: SQLiteStore, caplog: pytest.LogCaptureFixture) -> None:
    store.buffer.capacity = 100

    async def main() -> dict[str, object]:
        await store.open()
        holder = lock(store.path)
        try:
            for n in range(150):
                store.record_run(run(n))
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert await store.flush(30)
        health = await store.health()
        await store.close()
        return health

    with caplog.at_level(logging.ERROR, "taskpack.store"):
        health = asyncio.run(main())
    assert health["lost_runs"] == 50
    assert count(store.path) == 100
    assert sum("runs wait to be stored" in r.getMessage() for r in caplog.records) == 1


def test_close_writes_what_is_buffered_within_its_bound(store: SQLiteStore) -> None:
    async def main() -> float:
        await store.open()
        for n in range(10):
            store.record_run(run(n))
        assert await store.flush(30)
        holder = lock(store.path)
        try:
            for n in range(10, 20):
                store.record_run(run(n))
            started = time.monotonic()
            await store.close(timeout=1.0)  # cannot write them: gives up in time
            return time.monotonic() - started
        finally:
            holder.execute("ROLLBACK")
            holder.close()

    took = asyncio.run(main())
    assert took < 3.0, f"close took {took:.1f}s with a 1s bound"

    second = SQLiteStore("sqlite:///store.sqlite", root=store.path.parent)

    async def reopen() -> int:
        for n in range(20, 30):
            second.record_run(run(n))
        await second.close(timeout=10)  # closing flushes (never opened explicitly)
        return count(second.path)

    assert asyncio.run(reopen()) >= 20  # 10..19 were written or lost, 20..29 written


def test_the_writer_lingers_for_a_full_batch_and_writes_it_at_once() -> None:
    """Runs recorded one by one share one write: the writer waits up to
    ``linger`` for more, and a full batch is written without waiting."""
    kicks: list[int] = []
    buffer = RunBuffer("test", lambda: kicks.append(buffer.pending))
    buffer.linger = 60.0
    written: list[list[str]] = []

    def write(batch: list[RunRecord]) -> None:
        written.append([r.id for r in batch])

    for n in range(5):
        buffer.add(run(n))
        wait = buffer.write_due(write)
        assert wait is not None and 0 < wait <= 60.0
    assert written == [] and kicks == [1]  # woken once, for the first run
    buffer.linger = 0.0
    assert buffer.write_due(write) is None
    assert written == [[f"r{n}" for n in range(5)]]

    buffer.linger = 60.0
    for n in range(5, 5 + BATCH + 1):
        buffer.add(run(n))
    assert kicks == [1, 1, BATCH]  # the first run, then a full batch
    assert buffer.write_due(write) is not None  # the last run lingers
    assert [len(batch) for batch in written] == [5, BATCH]


def test_flush_reads_and_close_never_wait_for_the_linger(store: SQLiteStore) -> None:
    store.buffer.linger = 60.0

    async def main() -> tuple[bool, list[str]]:
        await store.open()
        for n in range(3):
            store.record_run(run(n))
        flushed = await store.flush(10)
        store.record_run(run(3))
        seen = [r.id for r in (await store.list_runs(limit=10)).runs]  # its own runs
        for n in range(4, 6):
            store.record_run(run(n))
        await store.close(timeout=10)
        return flushed, seen

    flushed, seen = asyncio.run(main())
    assert flushed
    assert seen == ["r3", "r2", "r1", "r0"]
    assert count(store.path) == 6
