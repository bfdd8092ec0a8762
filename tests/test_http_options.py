"""Task options over the HTTP API (at the ASGI level, with real ASGI messages):
422 with field errors, timeouts as 504, and the run history endpoint."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pydantic
import pytest

from taskpack import Registry, TaskEvent, define_task
from taskpack.http import TaskApi, asgi_app, bearer_token, loopback_only
from tests.asgi_driver import call
from tests.test_dev_server import TASKPACK, Dev, project_copy, wait_for


class Signup(pydantic.BaseModel):
    email: str
    age: int


async def greet(event: TaskEvent) -> str:
    return f"hello {event.payload.email}, {event.payload.age}"


async def slow(event: TaskEvent) -> None:
    await asyncio.sleep(30)


def make_registry(tmp_path: Path) -> Registry:
    return Registry.of({
        "signup": define_task(greet, payload_schema=Signup),
        "slow": define_task(slow, timeout=0.05),
    }, root=tmp_path, store="sqlite:///.taskpack/store.sqlite")


def app(registry: Registry, **kwargs: Any) -> Any:
    return asgi_app(TaskApi(registry, policy=kwargs.pop("policy", loopback_only()), **kwargs))


async def get(application: Any, path: str, query: str = "", **kwargs: Any) -> tuple[int, Any]:
    status, _, data = await call(application, "GET", path, query=query, **kwargs)
    return status, data


def test_schema_errors_are_422_with_field_errors(tmp_path: Path) -> None:
    registry = make_registry(tmp_path)

    async def main() -> None:
        application = app(registry)
        status, data = await get(application, "/_nitro/tasks/signup", "age=old")
        assert status == 422
        assert data["statusCode"] == 422 and data["error"] is True
        assert [(e["field"], e["type"]) for e in data["errors"]] == [
            ("email", "missing"), ("age", "int_parsing")]
        assert data["message"].startswith("Task `signup`: invalid payload: email: Field required")
        status, data = await get(application, "/_nitro/tasks/signup", "email=a@b&age=41")
        assert (status, data) == (200, "hello a@b, 41")

    asyncio.run(main())
    asyncio.run(registry.close())


def test_timeouts_are_504(tmp_path: Path) -> None:
    status, data = asyncio.run(get(app(make_registry(tmp_path)), "/_nitro/tasks/slow"))
    assert (status, data["message"]) == (504, "Task `slow` timed out after 0.05s (attempt 1)")


def test_runs_endpoint(tmp_path: Path) -> None:
    registry = make_registry(tmp_path)

    async def main() -> None:
        application = app(registry)
        await get(application, "/_nitro/tasks/signup", "age=old")
        await get(application, "/_nitro/tasks/signup", "email=x&age=1")
        await get(application, "/_nitro/tasks/signup", "email=y&age=2")
        status, data = await get(application, "/_nitro/tasks/signup/runs")
        assert status == 200
        runs = data["runs"]
        assert [(r["outcome"], r["attempts"], r["trigger"]) for r in runs] == [
            ("ok", 1, "http"), ("ok", 1, "http"), ("invalid", 0, "http")]
        assert set(runs[0]) == {"id", "task", "trigger", "payload_hash", "started_at",
                                "finished_at", "duration_ms", "attempts", "outcome", "error",
                                "host", "payload", "result", "traceback", "job_id"}
        assert runs[0]["payload"] == {"email": "y", "age": "2"}
        assert runs[0]["result"] == "hello y, 2"
        status, data = await get(application, "/_nitro/tasks/signup/runs", "limit=1")
        assert status == 200 and len(data["runs"]) == 1
        assert (await get(application, "/_nitro/tasks/slow/runs"))[1] == {
            "runs": [], "next_cursor": None}
        for bad in ("limit=0", "limit=x", "limit=1001"):
            status, data = await get(application, "/_nitro/tasks/signup/runs", bad)
            assert status == 400 and "limit must be an integer from 1 to 1000" in data["message"]
        status, data = await get(application, "/_nitro/tasks/nope/runs")
        assert (status, data["message"]) == (404, "Task `nope` is not available!")
        status, _, _ = await call(application, "POST", "/_nitro/tasks/signup/runs")
        assert status == 405

    asyncio.run(main())
    asyncio.run(registry.close())


@pytest.mark.parametrize(("headers", "status"), [
    ((), 401),
    ((("authorization", "Bearer wrong"),), 401),
    ((("authorization", "Bearer s3cret"),), 200),
])
def test_runs_endpoint_has_the_api_access_policy(tmp_path: Path, headers: tuple[tuple[str, str],
                                                                                ...],
                                                 status: int) -> None:
    application = app(make_registry(tmp_path), policy=bearer_token("s3cret"))
    got, _ = asyncio.run(get(application, "/_nitro/tasks/signup/runs", headers=headers))
    assert got == status


def test_runs_endpoint_refuses_non_loopback_clients_in_dev(tmp_path: Path) -> None:
    application = app(make_registry(tmp_path), dev=True)
    status, _ = asyncio.run(get(application, "/_nitro/tasks/signup/runs",
                                client=("203.0.113.9", 4000)))
    assert status == 403


def test_dev_server_history_survives_a_restart(tmp_path: Path) -> None:
    """HTTP and scheduled runs of ``taskpack dev`` (its copy of examples/basic
    fires ``tick`` every second) reach ``taskpack runs`` across a restart."""
    root = project_copy(tmp_path / "basic")
    first = Dev(root)
    try:
        assert httpx.get(f"{first.url}/_nitro/tasks/echo:payload?n=1").status_code == 200
        assert httpx.get(f"{first.url}/_nitro/tasks/boom").status_code == 500
        wait_for(lambda: httpx.get(f"{first.url}/_nitro/tasks/tick/runs").json()["runs"],
                 what="a scheduled run in the history", timeout=5)
    finally:
        assert first.stop() == 0
    second = Dev(root)
    try:
        response = httpx.get(f"{second.url}/_nitro/tasks/echo:payload/runs")
        assert response.status_code == 200
        assert [(r["outcome"], r["trigger"]) for r in response.json()["runs"]] == [("ok", "http")]
    finally:
        assert second.stop() == 0

    def runs(*args: str) -> list[dict[str, Any]]:
        out = subprocess.run([TASKPACK, "runs", *args, "--json", "--root", str(root)],
                             capture_output=True, text=True, timeout=30, check=True).stdout
        found: list[dict[str, Any]] = json.loads(out)
        return found

    http = [r for r in runs("--limit", "1000") if r["trigger"] == "http"]
    assert [(r["task"], r["outcome"], r["error"]) for r in http] == [
        ("boom", "error", "ValueError: it broke"), ("echo:payload", "ok", None)]
    ticks = runs("tick")
    assert ticks and all(r["trigger"] == "schedule:* * * * * *" for r in ticks)
    assert all(r["outcome"] == "ok" and 0 <= r["duration_ms"] < 5000 for r in ticks)
    table = subprocess.run([TASKPACK, "runs", "boom", "--root", str(root)], capture_output=True,
                           text=True, timeout=30, check=True).stdout.splitlines()
    assert table[1].split()[2:6] == ["boom", "http", "error", "1"]
    assert table[1].endswith("ValueError: it broke")
