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
