"""Vercel runs no worker: enqueue_task there writes to a PostgreSQL store for
an external `taskpack worker`, or raises one clear error without one."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from taskpack import QueueUnavailableError, Registry, define_task, enqueue_task, set_registry
from taskpack.queue import bind_queue
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
