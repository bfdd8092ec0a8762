"""The worker: claim due jobs, run each through the registry, finish them.

One loop per process (graphile-worker's ``worker.ts`` is the model)::

    while not stopping:
        free = concurrency - running
        claim up to `free` due jobs (locked for `lease` seconds)
        start each as an asyncio task: registry.run_job(...), then queue its finish
        if fewer than `free` came back: wait for a wake-up (NOTIFY on Postgres,
        an in-process event + a short poll on SQLite), a freed slot, or `poll` seconds

A slot is free again as soon as its job's attempt ended: the finish is
queued and a flusher task stores the queued finishes in batches
(:meth:`~taskpack.store.Store.finish_many`, one transaction), so claiming
and finishing overlap. Until its finish is stored a job still counts as
held: it is heartbeated, and at most ``concurrency`` finishes may wait
(claims pause beyond that). A process that dies with finishes unstored
leaves those jobs locked until their lease ends; they run again
(at-least-once), like a job that was running.

A heartbeat task renews the leases of running (and unstored) jobs every ``lease / 3``
seconds; a job whose lease was lost (this process stalled longer than the
lease and another worker took it) is logged, and its late ``finish`` is
ignored by the store. A job's failure retries per the task's ``retries``:
the job goes back to ``pending`` with ``run_at`` moved forward by the
backoff (stored, so it survives restarts); after the last attempt, or for a
:class:`~taskpack.errors.NonRetryableError`, it is ``failed`` with its
error and traceback.

The store being down never stops the loop: claims, heartbeats and finishes
are retried with growing pauses (:class:`~taskpack.queue.backoff.StoreHealth`,
one log line per state change). :meth:`Worker.stop` stops claiming, lets
running jobs finish within ``grace`` seconds and cancels the rest; their
jobs stay locked until their lease ends, then any worker runs them again
(delivery is at-least-once).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
import traceback
from typing import Any

from ..errors import TaskError
from ..execution import JobAttempt, describe
from ..registry import Registry
from ..store import DEFAULT_LEASE, Finish, Job, Store
from ..task import JobInfo, TaskContext
from .backoff import StoreHealth
from .notify import job_changed

logger = logging.getLogger("taskpack.queue")

DEFAULT_CONCURRENCY = 10
DEFAULT_POLL = 1.0


def worker_name() -> str:
    """``hostname:pid``, as run records name their host."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Worker:
    """Runs the jobs of ``store`` with the tasks of ``registry``, at most
    ``concurrency`` at once, each claim locked for ``lease`` seconds;
    ``poll`` bounds the wait for a delayed job to become due."""

    def __init__(self, registry: Registry, store: Store, *,
                 concurrency: int = DEFAULT_CONCURRENCY, lease: float = DEFAULT_LEASE,
                 poll: float = DEFAULT_POLL, name: str | None = None) -> None:
        if concurrency < 1:
            raise ValueError(f"worker concurrency must be at least 1, got {concurrency}")
        if lease <= 0:
            raise ValueError(f"worker lease must be more than 0 seconds, got {lease}")
        self.registry = registry
        self.store = store
        self.concurrency = concurrency
        self.lease = lease
        self.poll = poll
        self.name = name or f"{worker_name()}:{os.urandom(3).hex()}"
        self.health = StoreHealth(f"worker {self.name}", logger)
        self.running: dict[str, asyncio.Task[None]] = {}
        self._stopping = False
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._batch = max(1, concurrency // 2)
        self._finishing: list[Finish] = []
        self._unstored: set[str] = set()  # attempts ended, finish not stored yet
        self._flusher: asyncio.Task[None] | None = None

    def start(self) -> asyncio.Task[None]:
        """Start the loop on the running event loop; :meth:`stop` ends it."""
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self.run(), name=f"taskpack worker {self.name}")
        return self._loop_task

    async def run(self) -> None:
        """The loop (see the module docstring), until :meth:`stop`."""
        logger.info("worker %s started (concurrency %d, lease %gs)", self.name,
                    self.concurrency, self.lease)
        beats = asyncio.create_task(self._heartbeats())
        busy = False
        try:
            while not self._stopping:
                free = self.concurrency - len(self.running)
                free -= max(0, len(self._unstored) - self.concurrency)  # backpressure
                if free <= 0 or (busy and free < self._batch):
                    # Busy: claim again once a batch of slots is free (one
                    # claim per batch, not per finished job).
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                self._wake.clear()
                try:
                    jobs = await self.store.claim(self.name, free, self.lease)
                except Exception as exc:
                    await self._pause(self.health.failed("claim", exc))
                    continue
                self.health.ok()
                for job in jobs:
                    self._begin(job)
                busy = len(jobs) == free  # more may be due right now
                if len(jobs) < free and not self._stopping:
                    await self._wait_for_work()
        finally:
            beats.cancel()
            await asyncio.gather(beats, return_exceptions=True)

    async def stop(self, grace: float) -> None:
        """Stop claiming; wait up to ``grace`` seconds for running jobs,
        then cancel those still running (their jobs run again elsewhere
        after the lease)."""
        self._stopping = True
        self._stop.set()
        self._wake.set()
        if self._loop_task is not None:  # a claim stuck on a dead connection is cut short
            _, stuck = await asyncio.wait({self._loop_task}, timeout=max(grace, 1.0))
            for task in stuck:
                task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
        deadline = time.monotonic() + grace
        running = set(self.running.values())
        if running:
            logger.info("worker %s: waiting up to %gs for %d running job(s)", self.name,
                        grace, len(running))
            _, pending = await asyncio.wait(running, timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                logger.warning("worker %s: %d job(s) still running after %gs were cancelled; "
                               "they run again after their lease", self.name, len(pending), grace)
                await asyncio.gather(*pending, return_exceptions=True)
        flusher = self._flusher
        if flusher is not None and not flusher.done():  # store what ended, within grace
            await asyncio.wait({flusher}, timeout=max(0.0, deadline - time.monotonic()))
            if not flusher.done():  # finishes the store never took: run again after the lease
                flusher.cancel()
                logger.warning("worker %s: %d finish(es) not stored within %gs; those jobs "
                               "run again after their lease", self.name,
                               len(self._unstored), grace)
            await asyncio.gather(flusher, return_exceptions=True)
        logger.info("worker %s stopped", self.name)

    # -- one job -----------------------------------------------------------------

    def _begin(self, job: Job) -> None:
        task = asyncio.create_task(self._execute(job), name=f"taskpack job {job.id}")
        self.running[job.id] = task

        def done(_: asyncio.Task[None]) -> None:
            self.running.pop(job.id, None)
            self._wake.set()

        task.add_done_callback(done)

    async def _execute(self, job: Job) -> None:
        job_changed(job)
        info = JobInfo(job.id, job.attempts, job.max_attempts)
        try:
            attempt = await self.registry.run_job(
                job.task, job.payload, TaskContext(trigger=job.trigger), info)
        except TaskError as exc:  # the task is gone from this build, or cannot load
            logger.error("job %s: task %s cannot run: %s", job.id, job.task, exc.message)
            attempt = JobAttempt(False, error=describe(exc))
        except Exception as exc:  # a bug of ours; the job must still end
            logger.exception("job %s: unexpected error", job.id)
            attempt = JobAttempt(False, error=describe(exc),
                                 traceback="".join(traceback.format_exception(exc)))
        result = attempt.result
        if attempt.ok:
            try:
                json.dumps(result, allow_nan=False)
            except (TypeError, ValueError) as exc:
                attempt = JobAttempt(False, error=f"TaskError: task `{job.task}` returned a "
                                     f"value that is not JSON-serialisable: {exc}")
                result = None
        retry_at = None if attempt.retry_in is None else time.time() + attempt.retry_in
        await self._finish(job, attempt, result, retry_at)

    async def _finish(self, job: Job, attempt: JobAttempt, result: Any,
                      retry_at: float | None) -> None:
        """Queue the attempt's end for the flusher and free the slot;
        attempts that end in the same moment are stored together
        (:meth:`~taskpack.store.Store.finish_many`)."""
        self._unstored.add(job.id)
        self._finishing.append(Finish(job.id, attempt.ok, result, attempt.error,
                                      attempt.traceback, retry_at))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="taskpack finish")

    async def _flush(self) -> None:
        """Store queued finishes in batches until none are left; a store
        that is down is retried with backoff."""
        while self._finishing:
            await asyncio.sleep(0)  # let the finishes of this moment join the batch
            batch, self._finishing = self._finishing, []
            while True:
                try:
                    answers = await self.store.finish_many(self.name, batch)
                except Exception as exc:
                    await self._pause(self.health.failed("finish", exc), stopping_ok=True)
                    continue
                break
            self.health.ok()
            for item, stored in zip(batch, answers, strict=True):
                self._unstored.discard(item.job_id)
                if stored is None:
                    logger.warning("job %s: finished after its lease was lost; another worker "
                                   "ran or runs it (at-least-once)", item.job_id)
                job_changed(stored)
            self._wake.set()  # slots held back by unstored finishes are free

    # -- waiting ---------------------------------------------------------------------

    async def _wait_for_work(self) -> None:
        """Until a job may be due (the store says so), a slot frees, stop, or ``poll``."""
        store_wait = asyncio.ensure_future(self.store.wait_for_jobs(self.poll))
        woken = asyncio.ensure_future(self._wake.wait())
        done, pending = await asyncio.wait({store_wait, woken},
                                           return_when=asyncio.FIRST_COMPLETED)
        for future in pending:
            future.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if store_wait in done and store_wait.exception() is not None:
            exc = store_wait.exception()
            assert exc is not None
            await self._pause(self.health.failed("wait", exc))

    async def _pause(self, seconds: float, *, stopping_ok: bool = False) -> None:
        """Sleep ``seconds``, cut short by :meth:`stop` (unless
        ``stopping_ok``: a finish keeps trying until cancelled)."""
        if stopping_ok:
            await asyncio.sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    async def _heartbeats(self) -> None:
        """Renew the leases of running jobs every ``lease / 3`` seconds."""
        health = StoreHealth(f"worker {self.name} heartbeat", logger)
        while True:
            await asyncio.sleep(self.lease / 3)
            ids = list(self.running.keys() | self._unstored)
            if not ids:
                continue
            try:
                held = await self.store.heartbeat(self.name, ids, self.lease)
            except Exception as exc:
                health.failed("heartbeat", exc)
                continue
            health.ok()
            for job_id in ids:
                if job_id not in held and (job_id in self.running or job_id in self._unstored):
                    logger.warning("job %s: lease lost (this worker stalled past its lease); "
                                   "another worker may run it again", job_id)
