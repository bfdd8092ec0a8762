"""One queue system's side of ``bench/job_queue.py``, run as its own process.

``python bench/job_queue_drivers.py SYSTEM ROLE URL STATS [--concurrency C] [--jobs N]
[--spaced S]``

SYSTEM is ``taskpack`` (run with the project's venv), ``procrastinate`` or
``pgqueuer`` (run with the bench's peer venv). ROLE:

* ``setup``: create the system's schema in the (fresh) database ``URL``;
* ``enqueue``: enqueue ``--jobs`` no-op jobs, the system's fastest
  documented way (taskpack: ``Store.enqueue`` per job, 20 at a time;
  Procrastinate: ``batch_defer_async``; PgQueuer: one list ``enqueue``);
  STATS gets ``{"seconds": ...}``;
* ``latency``: enqueue ``--jobs`` jobs one at a time, ``--spaced`` seconds
  apart, each carrying its enqueue time;
* ``worker``: run a worker with ``--concurrency`` until killed; the no-op
  task notes when it ran, and STATS is rewritten every 0.1 s with
  ``{"count", "first", "last", "latencies"}`` (latency: start minus the
  enqueue time the job carries, in ms).

Every system gets the same no-op async task and the same database server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any


class Stats:
    """What a worker's no-op task saw, flushed to a file by a thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self.first: float | None = None
        self.last: float | None = None
        self.latencies: list[float] = []
        self._written = -1
        threading.Thread(target=self._flush_loop, daemon=True).start()

    def ran(self, enqueued_at: float | None) -> None:
        now = time.time()
        self.count += 1
        if self.first is None:
            self.first = now
        self.last = now
        if enqueued_at is not None:
            self.latencies.append((now - enqueued_at) * 1000)

    def _flush_loop(self) -> None:
        while True:
            time.sleep(0.1)
            if self.count != self._written:
                self._written = self.count
                data = {"count": self.count, "first": self.first, "last": self.last,
                        "latencies": list(self.latencies)}
                tmp = self.path.with_suffix(".tmp")
                tmp.write_text(json.dumps(data))
                os.replace(tmp, self.path)


def write(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data))


# -- taskpack --------------------------------------------------------------------------


async def taskpack_main(args: argparse.Namespace) -> None:
    from taskpack import Registry, define_task
    from taskpack.queue import Worker
    from taskpack.store import NewJob, store_for

    store = store_for(args.url, root=Path.cwd())
    await store.open()
    try:
        if args.role == "setup":
            return
        if args.role in ("enqueue", "latency"):
            began = time.perf_counter()
            if args.role == "enqueue":
                sem = asyncio.Semaphore(20)

                async def one() -> None:
                    async with sem:
                        await store.enqueue(NewJob(task="noop", payload={}, run_at=time.time()))

                await asyncio.gather(*(one() for _ in range(args.jobs)))
            else:
                for _ in range(args.jobs):
                    now = time.time()
                    await store.enqueue(NewJob(task="noop", payload={"t": now}, run_at=now))
                    await asyncio.sleep(args.spaced)
            write(args.stats, {"seconds": time.perf_counter() - began})
            return
        stats = Stats(args.stats)

        async def noop(event: Any) -> None:
            stats.ran(event.payload.get("t"))

        registry = Registry.of({"noop": define_task(noop, concurrency="parallel")},
                               Path.cwd(), store=store)
        worker = Worker(registry, store, concurrency=args.concurrency)
        await worker.run()
    finally:
        await store.close()


# -- Procrastinate 3.10 -------------------------------------------------------------------


async def procrastinate_main(args: argparse.Namespace) -> None:
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=args.url))
    stats = Stats(args.stats) if args.role == "worker" else None

    @app.task(name="noop")
    async def noop(t: float | None = None) -> None:
        assert stats is not None
        stats.ran(t)

    async with app.open_async():
        if args.role == "setup":
            await app.schema_manager.apply_schema_async()
        elif args.role == "enqueue":
            began = time.perf_counter()
            await noop.batch_defer_async(*({} for _ in range(args.jobs)))
            write(args.stats, {"seconds": time.perf_counter() - began})
        elif args.role == "latency":
            began = time.perf_counter()
            for _ in range(args.jobs):
                await noop.defer_async(t=time.time())
                await asyncio.sleep(args.spaced)
            write(args.stats, {"seconds": time.perf_counter() - began})
        else:
            await app.run_worker_async(concurrency=args.concurrency, wait=True,
                                       install_signal_handlers=True)


# -- PgQueuer 1.6 -----------------------------------------------------------------------------


async def pgqueuer_main(args: argparse.Namespace) -> None:
    import psycopg
    from pgqueuer import PgQueuer, PsycopgDriver, Queries
    from pgqueuer.models import Job

    conn = await psycopg.AsyncConnection.connect(args.url, autocommit=True)
    driver = PsycopgDriver(conn)
    queries = Queries(driver)
    if args.role == "setup":
        await queries.install()
    elif args.role == "enqueue":
        began = time.perf_counter()
        await queries.enqueue(["noop"] * args.jobs, [None] * args.jobs, [0] * args.jobs)
        write(args.stats, {"seconds": time.perf_counter() - began})
    elif args.role == "latency":
        began = time.perf_counter()
        for _ in range(args.jobs):
            await queries.enqueue("noop", json.dumps({"t": time.time()}).encode())
            await asyncio.sleep(args.spaced)
        write(args.stats, {"seconds": time.perf_counter() - began})
    else:
        stats = Stats(args.stats)
        pgq = PgQueuer(driver)

        @pgq.entrypoint("noop")
        async def noop(job: Job) -> None:
            data = json.loads(job.payload) if job.payload else {}
            stats.ran(data.get("t"))

        await pgq.run(batch_size=args.concurrency)
    await conn.close()


SYSTEMS = {"taskpack": taskpack_main, "procrastinate": procrastinate_main,
           "pgqueuer": pgqueuer_main}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("system", choices=sorted(SYSTEMS))
    parser.add_argument("role", choices=["setup", "enqueue", "latency", "worker"])
    parser.add_argument("url")
    parser.add_argument("stats", type=Path)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=0)
    parser.add_argument("--spaced", type=float, default=0.02)
    args = parser.parse_args()
    try:
        asyncio.run(SYSTEMS[args.system](args))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
