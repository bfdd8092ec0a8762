"""The store contract (taskpack/store/__init__.py), checked on every backend:
memory, SQLite and a real PostgreSQL (a fresh database per test, see
tests/pg.py). Each test states one rule of the contract's docstrings."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from taskpack.store import (
    Finish,
    FireClaim,
    NewJob,
    RunRecord,
    Store,
    StoreError,
    schedule_id,
)
from taskpack.store.buffer import MAX_JSON, from_json, json_text
from tests.helpers import REPO, read_store
from tests.pg import fresh_database

BACKENDS = ["memory", "sqlite", "postgres"]


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "memory":
        yield "memory://"
    elif request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.sqlite'}"
    else:
        with fresh_database() as database:
            yield database


def run(task: str, n: int, outcome: str = "ok", trigger: str = "manual") -> RunRecord:
    return RunRecord(f"{task}-{n}", task, trigger, "0" * 16, 1000.0 + n, 1000.5 + n, 500.0, 1,
                     outcome, None if outcome == "ok" else f"RuntimeError: {n}",  # type: ignore[arg-type]
                     "host:1", {"n": n}, {"r": n} if outcome == "ok" else None)


def job(task: str = "t", *, at: float | None = None, **kwargs: Any) -> NewJob:
    return NewJob(task, kwargs.pop("payload", {}), time.time() - 1 if at is None else at,
                  **kwargs)


# -- run history ---------------------------------------------------------------------


def test_runs_are_kept_newest_first_paged_and_filtered(url: str) -> None:
    async def test(store: Store) -> None:
        for n in range(8):
            store.record_run(run("a", n))
        store.record_run(run("b", 0, "error", "schedule:* * * * *"))
        store.record_run(run("b", 1, "ok", "http"))
        assert await store.flush(10)
        page = await store.list_runs(limit=4)
        assert [r.id for r in page.runs] == ["b-1", "b-0", "a-7", "a-6"]
        assert page.next_cursor is not None
        page = await store.list_runs(limit=4, cursor=page.next_cursor)
        assert [r.id for r in page.runs] == ["a-5", "a-4", "a-3", "a-2"]
        page = await store.list_runs(limit=4, cursor=page.next_cursor)
        assert ([r.id for r in page.runs], page.next_cursor) == (["a-1", "a-0"], None)
        assert [r.id for r in (await store.list_runs(task="b")).runs] == ["b-1", "b-0"]
        assert [r.id for r in (await store.list_runs(outcome="error")).runs] == ["b-0"]
        assert [r.id for r in (await store.list_runs(trigger="schedule")).runs] == ["b-0"]
        assert [r.id for r in (await store.list_runs(trigger="http")).runs] == ["b-1"]
        assert (await store.list_runs(task="nope")).runs == []
        assert await store.get_run("a-3") == run("a", 3)
        assert await store.get_run("nope") is None
        assert await store.last_runs() == {"a": run("a", 7), "b": run("b", 1, "ok", "http")}
        with pytest.raises(ValueError, match="invalid cursor"):
            await store.list_runs(cursor="not-a-cursor")

    read_store(url, test)


def test_each_task_keeps_history_limit_runs(url: str) -> None:
    async def test(store: Store) -> None:
        for n in range(7):
            store.record_run(run("a", n))
            store.record_run(run("b", n))
        assert await store.flush(10)
        assert [r.id for r in (await store.list_runs(task="a")).runs] == ["a-6", "a-5", "a-4"]
        assert len((await store.list_runs(limit=100)).runs) == 6

    read_store(url, test, history_limit=3)


def test_strings_that_cannot_be_encoded_get_replacement_characters(url: str) -> None:
    async def test(store: Store) -> None:
        bad = run("a", 1, "error")._replace(error="ValueError: caf\udcff\x00",
                                           payload={"f": "\ud83d"}, traceback="at \udcff",
                                           result=None)
        store.record_run(bad)
        store.record_run(run("a", 2)._replace(result=object()))  # not JSON: stored as text
        assert await store.flush(10)
        stored = await store.get_run("a-1")
        assert stored is not None
        assert (stored.error, stored.payload, stored.traceback) == (
            "ValueError: caf\ufffd\ufffd", {"f": "\ufffd"}, "at \ufffd")
        other = await store.get_run("a-2")
        assert other is not None and str(other.result).startswith("<object object")
        assert (await store.health())["lost_runs"] == 0

    read_store(url, test)


def test_batches_of_clean_and_unclean_runs_read_back_as_recorded(url: str) -> None:
    """Writers take shortcuts for runs that need no cleaning (text left as
    it is, a batch encoded at once, many rows per INSERT); what is read back
    is the same: floats exact, JSON types kept, non-JSON values as str(),
    NUL and lone surrogates replaced next to clean runs of the same batch,
    large payloads truncated, and a batch larger than one INSERT in order."""
    now = time.time()
    cyclic: list[object] = [1]
    cyclic.append(cyclic)

    def made(n: int, **fields: object) -> RunRecord:
        return run("t", n)._replace(id=f"r{n}", started_at=now + n / 7,
                                    finished_at=now + n / 3, **fields)

    batches = [
        [made(0, payload={"n": 0, "big": 2**70, "f": 0.1, "s": "é\n\u2028😀"}, result="null"),
         made(1, payload=None, result=[1, 2.5, True, None], trigger="schedule:* * * * *",
              error="E: x", traceback="line 1\nline 2", job_id="j1"),
         made(2, payload="text", result={"d": Decimal("1.5")})],  # not JSON: str()
        [made(3, payload={"x": "y" * (MAX_JSON + 10)}),  # truncated
         made(4, error="\\u0000 is no NUL"), made(5, error="E: nul\x00", host="h\udcff"),
         made(6, payload={"f": "\udcff"}), made(7, task="caf\u00e9", job_id="\x00")],
        [made(n) for n in range(8, 8 + 150)],
        [made(158, result=cyclic)],  # not JSON either: repr()
    ]

    async def test(store: Store) -> list[RunRecord]:
        for batch in batches:
            for record in batch:
                store.record_run(record)
            assert await store.flush(10)
        return (await store.list_runs(limit=200)).runs

    runs = read_store(url, test)
    assert [r.id for r in runs] == [f"r{n}" for n in reversed(range(8 + 150 + 1))]
    by_id = {r.id: r for r in runs}
    assert [by_id[f"r{n}"] for n in (0, 1, 4, 7)] == [
        batches[0][0], batches[0][1], batches[1][1], batches[1][4]._replace(job_id="\ufffd")]
    assert by_id["r2"].result == {"d": "1.5"}
    assert by_id["r3"].payload == from_json(json_text(batches[1][0].payload))
    assert by_id["r3"].payload["truncated"] == len('{"x": ""}') + MAX_JSON + 10
    assert (by_id["r5"].error, by_id["r5"].host, by_id["r6"].payload) == (
        "E: nul\ufffd", "h\ufffd", {"f": "\ufffd"})
    assert [by_id[f"r{n}"] for n in range(8, 8 + 150)] == batches[2]
    assert by_id["r158"].result == "[1, [...]]"


def test_a_flush_never_waits_for_the_writer_to_linger(url: str) -> None:
    async def test(store: Store) -> None:
        buffer = getattr(store, "buffer", None)  # the backends that write in the background
        if buffer is not None:
            buffer.linger = 60.0
        store.record_run(run("a", 1))
        assert await store.flush(10)
        assert await store.get_run("a-1") is not None

    read_store(url, test)


def test_health(url: str) -> None:
    async def test(store: Store) -> dict[str, Any]:
        return await store.health()

    health = read_store(url, test)
    assert health == {"ok": True, "backend": url.partition(":")[0].replace("postgresql",
                                                                            "postgres"),
                      "error": None, "lost_runs": 0}


# -- jobs ------------------------------------------------------------------------------


def test_claims_follow_priority_run_at_and_id_and_skip_jobs_not_due(url: str) -> None:
    async def test(store: Store) -> None:
        now = time.time()
        late = await store.enqueue(job(payload={"n": "late"}, at=now - 1))
        early = await store.enqueue(job(payload={"n": "early"}, at=now - 5))
        urgent = await store.enqueue(job(payload={"n": "urgent"}, at=now - 1, priority=-1))
        tie = await store.enqueue(job(payload={"n": "tie"}, at=now - 1))
        future = await store.enqueue(job(payload={"n": "future"}, at=now + 3600))
        assert (late.status, late.attempts, late.payload) == ("pending", 0, {"n": "late"})
        claimed = await store.claim("w1", 10)
        assert [j.id for j in claimed] == [urgent.id, early.id, late.id, tie.id]
        assert all(j.status == "running" and j.attempts == 1 and j.locked_by == "w1"
                   and j.locked_until is not None and j.locked_until > now for j in claimed)
        assert await store.claim("w2", 10) == []
        got = await store.get_job(future.id)
        assert got is not None and got.status == "pending"
        assert await store.claim("w2", 0) == []

    read_store(url, test)


def test_claim_limit(url: str) -> None:
    async def test(store: Store) -> None:
        for n in range(5):
            await store.enqueue(job(payload={"n": n}))
        assert [j.payload["n"] for j in await store.claim("w", 2)] == [0, 1]
        assert [j.payload["n"] for j in await store.claim("w", 2)] == [2, 3]
        assert [j.payload["n"] for j in await store.claim("w", 2)] == [4]

    read_store(url, test)


def test_a_named_queue_runs_one_job_at_a_time(url: str) -> None:
    async def test(store: Store) -> None:
        first = await store.enqueue(job(queue="q", payload={"n": 1}))
        second = await store.enqueue(job(queue="q", payload={"n": 2}))
        free = await store.enqueue(job(payload={"n": 3}))
        assert [j.id for j in await store.claim("w1", 10)] == [first.id, free.id]
        assert await store.claim("w2", 10) == []  # q is busy
        await store.finish(first.id, "w1", ok=True)
        assert [j.id for j in await store.claim("w2", 10)] == [second.id]

    read_store(url, test)


def test_a_lost_lease_is_claimed_in_its_order_even_by_a_full_claim(url: str) -> None:
    async def test(store: Store) -> None:
        now = time.time()
        lost = await store.enqueue(job(payload={"n": 1}, at=now - 10))
        assert len(await store.claim("dead", 1, lease=0.3)) == 1
        later = [await store.enqueue(job(payload={"n": n}, at=now - 5)) for n in (2, 3)]
        await asyncio.sleep(0.5)
        assert [(j.id, j.attempts) for j in await store.claim("alive", 1)] == [(lost.id, 2)]
        assert [j.id for j in await store.claim("alive", 5)] == [j.id for j in later]

    read_store(url, test)


def test_an_expired_lease_is_reclaimed_and_heartbeats_tell_who_lost_it(url: str) -> None:
    async def test(store: Store) -> None:
        held = await store.enqueue(job(payload={"n": 1}, queue="q"))
        kept = await store.enqueue(job(payload={"n": 2}))
        assert len(await store.claim("dead", 10, lease=0.3)) == 2
        assert await store.heartbeat("dead", [kept.id], lease=30) == {kept.id}
        await asyncio.sleep(0.5)
        reclaimed = await store.claim("alive", 10)
        assert [(j.id, j.attempts, j.locked_by) for j in reclaimed] == [(held.id, 2, "alive")]
        assert await store.heartbeat("dead", [held.id, kept.id]) == {kept.id}
        assert await store.finish(held.id, "dead", ok=True) is None  # not the holder any more
        done = await store.finish(held.id, "alive", ok=True, result={"x": 1})
        assert done is not None and (done.status, done.result, done.locked_by) == (
            "succeeded", {"x": 1}, None)
        assert await store.heartbeat("alive", []) == set()

    read_store(url, test)


def test_finish_retries_or_fails_for_good(url: str) -> None:
    async def test(store: Store) -> None:
        stored = await store.enqueue(job(max_attempts=2))
        (claimed,) = await store.claim("w", 1)
        retry_at = time.time() + 0.2
        again = await store.finish(claimed.id, "w", ok=False, error="E: 1", traceback="tb 1",
                                   retry_at=retry_at)
        assert again is not None
        assert (again.status, again.run_at, again.last_error, again.traceback,
                again.locked_by) == ("pending", pytest.approx(retry_at), "E: 1", "tb 1", None)
        assert await store.claim("w", 1) == []  # not due yet
        await asyncio.sleep(0.3)
        (claimed,) = await store.claim("w", 1)
        assert claimed.attempts == 2
        dead = await store.finish(claimed.id, "w", ok=False, error="E: 2", traceback="tb 2")
        assert dead is not None and (dead.status, dead.last_error) == ("failed", "E: 2")
        assert await store.finish(stored.id, "w", ok=True) is None  # finished already
        assert await store.finish("nope", "w", ok=True) is None

    read_store(url, test)


def test_a_job_enqueued_while_nobody_waits_still_wakes_the_next_wait(url: str) -> None:
    """A worker is between its claim and its wait when a job arrives: the
    wake-up must not be lost (it would wait a whole poll or more)."""
    async def test(store: Store) -> None:
        await store.wait_for_jobs(0.01)  # listening (Postgres), nobody waits now
        await store.enqueue(job())
        await asyncio.sleep(0.2)  # the notification arrives while nobody waits
        began = time.monotonic()
        await store.wait_for_jobs(3)
        assert time.monotonic() - began < 0.5

    read_store(url, test)


def test_finish_many_ends_several_attempts_in_order(url: str) -> None:
    async def test(store: Store) -> None:
        for n in range(4):
            await store.enqueue(job(payload={"n": n}, max_attempts=2))
        a, b, c, d = await store.claim("w", 4)
        await store.cancel(c.id)  # its attempt ends, it stays cancelled
        done = await store.finish_many("w", [
            Finish(b.id, ok=False, error="E: b", traceback="tb", retry_at=time.time() + 60),
            Finish(a.id, ok=True, result={"a": 1}),
            Finish(c.id, ok=True, result="late"),
            Finish("nope", ok=True),
        ])
        assert [job.id if job else None for job in done] == [b.id, a.id, c.id, None]
        assert (done[0].status, done[0].last_error) == ("pending", "E: b")  # type: ignore[union-attr]
        assert (done[1].status, done[1].result) == ("succeeded", {"a": 1})  # type: ignore[union-attr]
        assert done[2].status == "cancelled"  # type: ignore[union-attr]
        assert await store.finish_many("other", [Finish(d.id, ok=True)]) == [None]
        assert await store.finish_many("w", []) == []
        assert (await store.job_counts())["running"] == 1  # d, still held by w

    read_store(url, test)


def test_keys_replace_or_preserve_a_pending_job(url: str) -> None:
    async def test(store: Store) -> None:
        first = await store.enqueue(job(key="k", payload={"v": 1}))
        replaced = await store.enqueue(job(key="k", payload={"v": 2}, priority=5))
        assert replaced.id == first.id and (replaced.payload, replaced.priority) == ({"v": 2}, 5)
        kept = await store.enqueue(job(key="k", payload={"v": 3}, key_mode="preserve"))
        assert kept.id == first.id and kept.payload == {"v": 2}
        (claimed,) = await store.claim("w", 10)
        fresh = await store.enqueue(job(key="k", payload={"v": 4}))  # running: key is free
        assert fresh.id != first.id and fresh.status == "pending"
        assert (await store.job_counts())["running"] == 1 and claimed.id == first.id

    read_store(url, test)


def test_cancel_and_retry(url: str) -> None:
    async def test(store: Store) -> None:
        pending = await store.enqueue(job(payload={"n": 1}))
        cancelled = await store.cancel(pending.id)
        assert cancelled is not None and cancelled.status == "cancelled"
        assert await store.claim("w", 10) == []
        running = await store.enqueue(job(payload={"n": 2}, max_attempts=3))
        await store.claim("w", 10)
        assert (await store.cancel(running.id)).status == "cancelled"  # type: ignore[union-attr]
        ended = await store.finish(running.id, "w", ok=False, error="E", retry_at=time.time())
        assert ended is not None and ended.status == "cancelled"  # no retry after a cancel
        again = await store.retry(pending.id)
        assert again is not None and (again.status, again.attempts) == ("pending", 0)
        assert [j.id for j in await store.claim("w", 10)] == [pending.id]
        done = await store.finish(pending.id, "w", ok=True)
        assert done is not None and done.status == "succeeded"
        assert (await store.retry(pending.id)).status == "succeeded"  # type: ignore[union-attr]
        assert (await store.cancel(pending.id)).status == "succeeded"  # type: ignore[union-attr]
        assert await store.cancel("nope") is None and await store.retry("nope") is None

    read_store(url, test)


def test_list_jobs_pages_and_counts(url: str) -> None:
    async def test(store: Store) -> None:
        ids = [(await store.enqueue(job("a" if n % 2 else "b", payload={"n": n}))).id
               for n in range(5)]
        jobs, cursor = await store.list_jobs(limit=2)
        assert [j.id for j in jobs] == ids[:-3:-1] and cursor is not None
        jobs, cursor = await store.list_jobs(limit=2, cursor=cursor)
        assert [j.id for j in jobs] == [ids[2], ids[1]]
        jobs, cursor = await store.list_jobs(limit=2, cursor=cursor)
        assert ([j.id for j in jobs], cursor) == ([ids[0]], None)
        assert [j.id for j in (await store.list_jobs(task="a"))[0]] == [ids[3], ids[1]]
        await store.claim("w", 1)
        assert [j.id for j in (await store.list_jobs(status="running"))[0]] == [ids[0]]
        assert await store.job_counts() == {"pending": 4, "running": 1, "succeeded": 0,
                                            "failed": 0, "cancelled": 0}
        got = await store.get_job(ids[0])
        assert got is not None and json.loads(json.dumps(got.to_dict()))["id"] == ids[0]
        assert await store.get_job("nope") is None

    read_store(url, test)


def test_wait_for_jobs_wakes_on_enqueue(url: str) -> None:
    async def test(store: Store) -> float:
        async def later() -> None:
            await asyncio.sleep(0.2)
            await store.enqueue(job())

        started = time.monotonic()
        waker = asyncio.create_task(later())
        await store.wait_for_jobs(30)
        await waker
        return time.monotonic() - started

    assert read_store(url, test) < 5


# -- schedule claims ---------------------------------------------------------------------


def test_exactly_one_claim_wins_and_its_jobs_come_with_it(url: str) -> None:
    schedule = schedule_id("* * * * *", "UTC", ["t"])

    async def test(store: Store) -> None:
        assert await store.last_fire(schedule) is None
        claims = [FireClaim(schedule, 60_000, [job(trigger="schedule:* * * * *")])
                  for _ in range(20)]
        won = await asyncio.gather(*(store.claim_fire(c, f"h{i}") for i, c in enumerate(claims)))
        assert sum(won) == 1
        assert await store.last_fire(schedule) == 60_000
        jobs, _ = await store.list_jobs()
        assert [(j.task, j.trigger) for j in jobs] == [("t", "schedule:* * * * *")]
        assert await store.claim_fire(FireClaim(schedule, 120_000), "h")
        assert await store.last_fire(schedule) == 120_000
        assert await store.last_fire("other") is None

    read_store(url, test)


CHILD = """
import asyncio, sys, time
from pathlib import Path
from taskpack.store import FireClaim, NewJob, store_for

async def main(url, who):
    store = store_for(url, root=Path.cwd())
    await store.open()
    won = 0
    for n in range(40):
        claim = FireClaim("s", n * 1000, [NewJob("t", {"n": n}, time.time())])
        won += await store.claim_fire(claim, who)
    claimed = 0
    while True:
        jobs = await store.claim(who, 3)
        if not jobs:
            break
        for job in jobs:
            await store.finish(job.id, who, ok=True)
        claimed += len(jobs)
    await store.close()
    print(won, claimed)

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def test_processes_open_migrate_claim_fires_and_jobs_without_overlap(url: str) -> None:
    """Three processes open a fresh store at once (the migrations run once),
    race for the same 40 fires (each won exactly once) and drain the jobs
    the winners stored (each job claimed once)."""
    if url.startswith("memory"):
        pytest.skip("a memory store is one process's")
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, url, f"p{i}"], cwd=REPO,
                              stdout=subprocess.PIPE, text=True) for i in range(3)]
    outputs = [proc.communicate(timeout=120)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0]
    totals = [tuple(map(int, out.split())) for out in outputs]
    assert sum(won for won, _ in totals) == 40
    assert sum(claimed for _, claimed in totals) == 40

    async def test(store: Store) -> None:
        assert await store.job_counts() == {"pending": 0, "running": 0, "succeeded": 40,
                                            "failed": 0, "cancelled": 0}
        status = await store.migration_status()
        assert status.current == status.latest and status.pending == ()

    read_store(url, test)


# -- migrations ----------------------------------------------------------------------------


def test_migrations_apply_once_and_a_newer_store_is_refused(url: str) -> None:
    if url.startswith("memory"):
        pytest.skip("a memory store has no schema")

    async def test(store: Store) -> None:
        status = await store.migration_status()
        assert status.current == status.latest >= 1 and status.pending == ()
        assert await store.migrate() == status
        await store.open()  # again: nothing to do

    read_store(url, test)
    newer = 99
    if url.startswith("sqlite"):
        import sqlite3

        path = url[len("sqlite:///"):]
        with sqlite3.connect(path) as conn:
            conn.execute("INSERT INTO schema_version VALUES (?, 0)", (newer,))
        conn.close()
    else:
        import psycopg

        with psycopg.connect(url, autocommit=True) as pg:
            pg.execute("INSERT INTO taskpack_schema_version VALUES (%s, 0)", (newer,))
    with pytest.raises(StoreError, match=r"schema version 99, newer than this taskpack knows"):
        read_store(url, lambda store: store.health())
