"""``taskpack.cloudflare.Worker`` under CPython, for what the Pyodide runs do
not reach cheaply. ``ctx`` and ``env`` are stand-ins for workerd's objects
(the real ones are exercised in test_cloudflare_pyodide.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from taskpack.cloudflare import Worker
from taskpack.http import HttpRequest
from taskpack.registry import Registry, TaskEntry


class Ctx:
    def __init__(self) -> None:
        self.received: list[Any] = []

    def waitUntil(self, awaitable: Any) -> None:
        self.received.append(awaitable)


def registry(tmp_path: Path, threads: bool = False) -> Registry:
    (tmp_path / "echo.py").write_text(
        "from taskpack import define_task\n\n"
        "@define_task\n"
        "def run(event):\n"
        "    return event.payload\n"
    )
    return Registry(tmp_path, {"echo": TaskEntry("echo", "echo.py")}, threads=threads)


def test_the_registry_must_run_sync_tasks_inline(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="threads=False"):
        Worker(registry(tmp_path, threads=True), {}, tasks_api=False)


def test_an_oversized_body_is_refused_before_it_is_read(tmp_path: Path) -> None:
    worker = Worker(registry(tmp_path), {}, tasks_api=True)
    env = SimpleNamespace(TASKPACK_TASKS_TOKEN="t")
    request = HttpRequest.from_url(
        "POST",
        "https://w.example/_nitro/tasks/echo",
        headers={"authorization": "Bearer t", "content-length": str(2 * 1024 * 1024)},
    )

    async def read_body() -> bytes:
        raise AssertionError("the body must not be read")

    response = asyncio.run(worker.fetch(request, read_body, env=env, ctx=Ctx()))
    assert response.status == 413


def test_refused_requests_never_read_the_body(tmp_path: Path) -> None:
    worker = Worker(registry(tmp_path), {}, tasks_api=True)
    env = SimpleNamespace(TASKPACK_TASKS_TOKEN="t")
    request = HttpRequest.from_url("POST", "https://w.example/_nitro/tasks/echo")

    async def read_body() -> bytes:
        raise AssertionError("the body must not be read")

    response = asyncio.run(worker.fetch(request, read_body, env=env, ctx=Ctx()))
    assert response.status == 401


def test_http_runs_get_env_ctx_and_wait_until(tmp_path: Path) -> None:
    (tmp_path / "ctx.py").write_text(
        "import asyncio\n"
        "from taskpack import define_task\n\n"
        "@define_task\n"
        "async def run(event):\n"
        "    event.context.wait_until(asyncio.sleep(0))\n"
        "    return [event.context.trigger, event.context.env.NAME]\n"
    )
    reg = Registry(tmp_path, {"ctx": TaskEntry("ctx", "ctx.py")}, threads=False)
    worker = Worker(reg, {}, tasks_api=True)
    env = SimpleNamespace(TASKPACK_TASKS_TOKEN="t", NAME="worker-env")
    ctx = Ctx()
    request = HttpRequest.from_url(
        "GET", "https://w.example/_nitro/tasks/ctx", headers={"authorization": "Bearer t"}
    )

    async def main() -> Any:
        async def read_body() -> bytes:
            return b""

        response = await worker.fetch(request, read_body, env=env, ctx=ctx)
        await asyncio.gather(*ctx.received)
        return response

    response = asyncio.run(main())
    assert response.status == 200
    assert response.json() == ["http", "worker-env"]
    assert len(ctx.received) == 1
