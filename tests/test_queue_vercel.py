"""Vercel runs no worker: enqueue_task there writes to a PostgreSQL store for
an external `taskpack worker`, or raises one clear error without one."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from taskpack import QueueUnavailableError, Registry, define_task, enqueue_task, set_registry
from taskpack.queue import bind_queue
from taskpack.queue.binding import current
from taskpack.queue.remote import StoreSink
from taskpack.store import store_for
from taskpack.vercel import vercel_app


def test_without_a_postgres_url_enqueue_says_what_to_set(tmp_path: Path) -> None:
    registry = Registry.of({"t": define_task(lambda e: 1)}, tmp_path)
    set_registry(registry)
    try:
        for environ in ({}, {"TASKPACK_DATABASE_URL": "sqlite:///x.sqlite"}):
            vercel_app(registry, [], environ=environ)
            with pytest.raises(QueueUnavailableError,
                               match="needs a PostgreSQL store: set TASKPACK_DATABASE_URL"):
                asyncio.run(enqueue_task("t"))
    finally:
        bind_queue(None)
        set_registry(None)


def test_with_a_postgres_url_the_job_is_written_for_an_external_worker(
        tmp_path: Path, pg_url: str) -> None:
    registry = Registry.of({"t": define_task(lambda e: 1)}, tmp_path)
    set_registry(registry)

    async def main() -> None:
        vercel_app(registry, [], environ={"TASKPACK_DATABASE_URL": pg_url})
        job = await enqueue_task("t", {"from": "vercel"})
        store = store_for(pg_url, root=tmp_path)
        await store.open()
        try:
            stored = await store.get_job(job.id)
            assert stored is not None and stored.status == "pending"
            assert stored.payload == {"from": "vercel"}
        finally:
            await store.close()
            sink = current().sink
            assert isinstance(sink, StoreSink)
            await (await sink.store()).close()

    try:
        asyncio.run(main())
    finally:
        bind_queue(None)
        set_registry(None)
