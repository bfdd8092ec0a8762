"""The in-memory store: everything in this process's memory, gone when it
exits (see :class:`taskpack.store.Store` for the contract).

The default for Cloudflare, Vercel and library use. It imports only what
Pyodide has (no ``sqlite3``, no threads needed), never blocks, and runs
are stored at once (:meth:`record_run` is a few dictionary operations; runs
are cleaned into JSON-ready values when they are read), so ``lost_runs``
stays 0 and :meth:`flush` returns at once. Jobs and fire
claims work as on the other backends, within the process.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from . import (
    DEFAULT_HISTORY_LIMIT,
    DEFAULT_LEASE,
    JOB_STATUSES,
    FireClaim,
    Job,
    MigrationStatus,
    NewJob,
    RunPage,
    RunRecord,
    Store,
)
from .buffer import clean_run
from .paging import Wakeup, decode_cursor, split_page


class MemoryStore(Store):
    """``memory://``: one process's store."""

    scheme = "memory"

    def __init__(self, url: str = "memory://", *, root: Path | None = None,
                 history_limit: int = DEFAULT_HISTORY_LIMIT) -> None:
        self.url = url
        self.history_limit = history_limit
        self._lock = threading.Lock()
        self._seq = itertools.count(1)
        self._runs: dict[str, deque[tuple[int, RunRecord]]] = {}
        self._jobs: dict[str, tuple[int, Job]] = {}
        self._claims: dict[str, set[int]] = {}
        self._wakeup = Wakeup()

    async def open(self) -> None:
        """Nothing to connect to."""

    async def close(self, timeout: float = 5.0) -> None:
        """Nothing to release; the data stays until the object goes."""

    async def health(self) -> dict[str, Any]:
        return {"ok": True, "backend": "memory", "error": None, "lost_runs": 0}

    async def migration_status(self) -> MigrationStatus:
        return MigrationStatus(current=0, latest=0)

    async def migrate(self) -> MigrationStatus:
        return MigrationStatus(current=0, latest=0)

    # run history

    def record_run(self, run: RunRecord) -> None:
        with self._lock:
            runs = self._runs.get(run.task)
            if runs is None:
                runs = self._runs[run.task] = deque(maxlen=self.history_limit)
            runs.append((next(self._seq), run))

    async def flush(self, timeout: float = 5.0) -> bool:
        return True

    async def list_runs(self, *, task: str | None = None, outcome: str | None = None,
                        trigger: str | None = None, limit: int = 20,
                        cursor: str | None = None) -> RunPage:
        below = decode_cursor(cursor)
        with self._lock:
            if task is not None:
                found = list(self._runs.get(task, ()))
            else:
                found = [item for runs in self._runs.values() for item in runs]
        found.sort(key=lambda item: item[0], reverse=True)
        page: list[tuple[int, RunRecord]] = []
        for seq, run in found:
            if below is not None and seq >= below:
                continue
            if outcome is not None and run.outcome != outcome:
                continue
            if trigger is not None and not _trigger_matches(run.trigger, trigger):
                continue
            page.append((seq, run))
            if len(page) > limit:
                break
        runs, next_cursor = split_page(page, limit)
        return RunPage([clean_run(run) for _, run in runs], next_cursor)

    async def get_run(self, run_id: str) -> RunRecord | None:
        with self._lock:
            for runs in self._runs.values():
                for _, run in runs:
                    if run.id == run_id:
                        return clean_run(run)
        return None

    async def last_runs(self) -> dict[str, RunRecord]:
        with self._lock:
            last = {task: runs[-1][1] for task, runs in sorted(self._runs.items()) if runs}
        return {task: clean_run(run) for task, run in last.items()}

    # jobs

    async def enqueue(self, job: NewJob) -> Job:
        now = time.time()
        with self._lock:
            if job.key is not None:
                for seq, old in self._jobs.values():
                    if old.key == job.key and old.status == "pending":
                        if job.key_mode == "preserve":
                            return old
                        new = replace(old, task=job.task, payload=dict(job.payload),
                                      run_at=job.run_at, priority=job.priority, queue=job.queue,
                                      max_attempts=job.max_attempts, trigger=job.trigger,
                                      updated_at=now)
                        self._jobs[old.id] = (seq, new)
                        break
                else:
                    new = self._insert(job, now)
            else:
                new = self._insert(job, now)
        self._wakeup.notify()
        return new

    def _insert(self, job: NewJob, now: float) -> Job:
        stored = Job(id=os.urandom(16).hex(), task=job.task, payload=dict(job.payload),
                     status="pending", run_at=job.run_at, created_at=now, updated_at=now,
                     max_attempts=job.max_attempts, queue=job.queue, key=job.key,
                     priority=job.priority, trigger=job.trigger)
        self._jobs[stored.id] = (next(self._seq), stored)
        return stored

    async def claim(self, worker: str, limit: int, lease: float = DEFAULT_LEASE) -> list[Job]:
        now = time.time()
        claimed: list[Job] = []
        with self._lock:
            busy = {job.queue for _, job in self._jobs.values()
                    if job.queue is not None and job.status == "running"
                    and (job.locked_until or 0) >= now}
            due = sorted(
                ((job.priority, job.run_at, seq, job) for seq, job in self._jobs.values()
                 if (job.status == "pending" and job.run_at <= now)
                 or (job.status == "running" and (job.locked_until or 0) < now)),
                key=lambda item: item[:3],
            )
            for _, _, seq, job in due:
                if len(claimed) >= limit:
                    break
                if job.queue is not None:
                    if job.queue in busy:
                        continue
                    busy.add(job.queue)
                new = replace(job, status="running", attempts=job.attempts + 1, locked_by=worker,
                              locked_until=now + lease, updated_at=now)
                self._jobs[job.id] = (seq, new)
                claimed.append(new)
        return claimed

    async def heartbeat(self, worker: str, job_ids: Sequence[str],
                        lease: float = DEFAULT_LEASE) -> set[str]:
        now = time.time()
        held: set[str] = set()
        with self._lock:
            for job_id in job_ids:
                item = self._jobs.get(job_id)
                if item is None:
                    continue
                seq, job = item
                if job.locked_by == worker and job.status == "running":
                    self._jobs[job_id] = (seq, replace(job, locked_until=now + lease))
                    held.add(job_id)
        return held

    async def finish(self, job_id: str, worker: str, *, ok: bool, result: Any = None,
                     error: str | None = None, traceback: str | None = None,
                     retry_at: float | None = None) -> Job | None:
        now = time.time()
        with self._lock:
            item = self._jobs.get(job_id)
            if item is None:
                return None
            seq, job = item
            if job.locked_by != worker or job.status not in ("running", "cancelled"):
                return None
            done = replace(job, locked_by=None, locked_until=None, updated_at=now)
            if ok:
                done = replace(done, result=result,
                               status="succeeded" if job.status == "running" else job.status)
            else:
                done = replace(done, last_error=error, traceback=traceback)
                if job.status == "running":
                    done = (replace(done, status="pending", run_at=retry_at)
                            if retry_at is not None else replace(done, status="failed"))
            self._jobs[job_id] = (seq, done)
        if done.status == "pending" or job.queue is not None:
            self._wakeup.notify()
        return done

    async def wait_for_jobs(self, timeout: float) -> None:
        await self._wakeup.wait(timeout)

    async def get_job(self, job_id: str) -> Job | None:
        with self._lock:
            item = self._jobs.get(job_id)
        return None if item is None else item[1]

    async def list_jobs(self, *, status: str | None = None, task: str | None = None,
                        limit: int = 50, cursor: str | None = None
                        ) -> tuple[list[Job], str | None]:
        below = decode_cursor(cursor)
        with self._lock:
            found = sorted(self._jobs.values(), key=lambda item: item[0], reverse=True)
        page = [(seq, job) for seq, job in found
                if (below is None or seq < below)
                and (status is None or job.status == status)
                and (task is None or job.task == task)][: limit + 1]
        jobs, next_cursor = split_page(page, limit)
        return [job for _, job in jobs], next_cursor

    async def job_counts(self) -> dict[str, int]:
        counts: dict[str, int] = dict.fromkeys(JOB_STATUSES, 0)
        with self._lock:
            for _, job in self._jobs.values():
                counts[job.status] += 1
        return counts

    async def cancel(self, job_id: str) -> Job | None:
        return self._change(job_id, ("pending", "running"),
                            lambda job, now: replace(job, status="cancelled", updated_at=now))

    async def retry(self, job_id: str) -> Job | None:
        job = self._change(job_id, ("failed", "cancelled"), lambda job, now: replace(
            job, status="pending", attempts=0, run_at=now, updated_at=now, locked_by=None,
            locked_until=None))
        if job is not None and job.status == "pending":
            self._wakeup.notify()
        return job

    def _change(self, job_id: str, statuses: tuple[str, ...],
                change: Callable[[Job, float], Job]) -> Job | None:
        """The job ``job_id`` after ``change`` (given the job and the time),
        applied only while its status is one of ``statuses``; None when
        there is no such job."""
        with self._lock:
            item = self._jobs.get(job_id)
            if item is None:
                return None
            seq, job = item
            if job.status in statuses:
                job = change(job, time.time())
                self._jobs[job_id] = (seq, job)
        return job

    # schedule claims

    async def claim_fire(self, claim: FireClaim, host: str) -> bool:
        with self._lock:
            fires = self._claims.setdefault(claim.schedule, set())
            if claim.fire_ms in fires:
                return False
            fires.add(claim.fire_ms)
            if len(fires) > 1000:  # keep the newest: last_fire needs only the newest
                for old in sorted(fires)[:-1000]:
                    fires.discard(old)
        for job in claim.jobs:
            await self.enqueue(job)
        return True

    async def last_fire(self, schedule: str) -> int | None:
        with self._lock:
            fires = self._claims.get(schedule)
            return max(fires) if fires else None


def _trigger_matches(value: str, wanted: str) -> bool:
    """``schedule`` matches every ``schedule:<cron>``; others match exactly."""
    return value == wanted or (wanted == "schedule" and value.startswith("schedule:"))
