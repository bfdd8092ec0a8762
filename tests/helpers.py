"""Helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import shutil
import textwrap
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"

MakeProject = Callable[[dict[str, str]], Path]
T = TypeVar("T")

LOCAL_STATE = shutil.ignore_patterns("__pycache__", ".output", ".taskpack")


def copy_example(dest: Path, name: str = "basic") -> Path:
    """A private copy of ``examples/<name>`` at ``dest``, without what running
    it locally leaves behind (build output, run history, bytecode)."""
    shutil.copytree(EXAMPLES / name, dest, ignore=LOCAL_STATE)
    return dest


def write_files(root: Path, files: dict[str, str]) -> Path:
    """Write ``files`` (relative path → dedented text) under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return root


TASK = """
from taskpack import define_task

@define_task(description="{description}")
async def run(event):
    return {{"result": event.payload}}
"""


ECHO = """
from taskpack import define_task

@define_task
async def run(event):
    return event.payload
"""
"""A task returning its payload as it is."""


RECORDER = """
import json, os
from taskpack import define_task

@define_task(description="Record the payload")
async def run(event):
    with open(os.environ["RECORD_TO"], "a") as out:
        out.write(json.dumps({"task": event.name, "payload": event.payload}) + "\\n")
    return {"seen": event.payload}
"""
"""A task appending ``{"task", "payload"}`` as a JSON line to ``$RECORD_TO``
and returning ``{"seen": payload}``."""

FAILING = """
from taskpack import define_task

@define_task()
def run(event):
    raise RuntimeError("boom")
"""
"""A task that always fails (``RuntimeError: boom``)."""


def task_source(description: str = "") -> str:
    """Source of a minimal async task module echoing its payload."""
    return TASK.format(description=description)


def recorded_runs(registry: Any, task: str | None = None, limit: int = 20) -> list[Any]:
    """The runs ``registry`` stored (of ``task``), newest first, read from
    outside any event loop (its buffered runs stored first)."""
    import asyncio

    async def read() -> list[Any]:
        await registry.store.flush(10)
        return list((await registry.store.list_runs(task=task, limit=limit)).runs)

    return asyncio.run(read())


def stored_runs(path: Path, task: str | None = None, limit: int = 1000) -> list[Any]:
    """The runs in the SQLite store file ``path`` (read-only), newest first."""
    import asyncio

    from taskpack.store.sqlite import SQLiteStore

    store = SQLiteStore(f"sqlite:///{path.resolve()}?mode=ro", root=path.parent)

    async def read() -> list[Any]:
        try:
            return list((await store.list_runs(task=task, limit=limit)).runs)
        finally:
            await store.close()

    return asyncio.run(read())


def url_runs(url: str, task: str | None = None, limit: int = 1000,
             root: Path | None = None) -> list[Any]:
    """The runs in the store at ``url`` (any backend), newest first, read
    through its own API (a relative SQLite path is under ``root``)."""

    async def read(store: Any) -> list[Any]:
        return list((await store.list_runs(task=task, limit=limit)).runs)

    return read_store(url, read, root)


def read_store(url: str, read: Callable[[Any], Awaitable[T]], root: Path | None = None, *,
               history_limit: int = 1000) -> T:
    """``await read(store)`` on the store at ``url`` (any backend; a
    relative SQLite path is under ``root``), opened for it and closed
    after, from outside any event loop."""
    import asyncio

    from taskpack.store import store_for

    store = store_for(url, root=root or Path.cwd(), history_limit=history_limit)

    async def main() -> T:
        await store.open()
        try:
            return await read(store)
        finally:
            await store.close()

    return asyncio.run(main())


async def all_jobs(store: Any) -> list[Any]:
    """Every job in ``store``, page after page, through its own API."""
    jobs: list[Any] = []
    cursor = None
    while True:
        page, cursor = await store.list_jobs(limit=500, cursor=cursor)
        jobs.extend(page)
        if cursor is None:
            return jobs


async def all_runs(store: Any) -> list[Any]:
    """Every run ``store`` recorded, page after page, through its own API."""
    runs: list[Any] = []
    cursor = None
    while True:
        page = await store.list_runs(limit=500, cursor=cursor)
        runs.extend(page.runs)
        if page.next_cursor is None:
            return runs
        cursor = page.next_cursor


def fire_seconds_of(jobs: list[Any], task: str) -> Counter[int]:
    """How many jobs ``task`` has per scheduled second (a schedule's fires
    claimed as jobs carry ``scheduledTime`` in ms)."""
    return Counter(job.payload["scheduledTime"] // 1000 for job in jobs if job.task == task)
