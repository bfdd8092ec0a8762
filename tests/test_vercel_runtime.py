"""The Vercel function's runtime (``taskpack.vercel``) at the ASGI level: cron
routes, ``CRON_SECRET`` fail-closed, the schedule header, parallel runs, and
the task API policy. Tasks are real files on disk; requests are real ASGI
messages (the built function over real HTTP is in tests/vercel/)."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from taskpack.registry import Registry, TaskEntry
from taskpack.vercel import CRON_PREFIX, CronDispatcher, CronRoute, cron_path, vercel_app
from tests.asgi_driver import call
from tests.helpers import write_files

RECORDING_TASK = """
import json, os
from pathlib import Path
from taskpack import define_task

@define_task
async def run(event):
    with open(Path(__file__).parent / "runs.jsonl", "a") as fh:
        fh.write(json.dumps({"task": event.name, "payload": event.payload,
                             "trigger": event.context.trigger}) + "\\n")
    return "done"
"""

FILES = {
    "tasks/runs.jsonl": "",
    "tasks/a.py": RECORDING_TASK,
    "tasks/b.py": RECORDING_TASK,
    "tasks/boom.py": """
        from taskpack import define_task

        @define_task
        def run(event):
            raise RuntimeError("kaboom")
    """,
    "tasks/later.py": """
        import asyncio
        from pathlib import Path
        from taskpack import define_task

        async def finish():
            await asyncio.sleep(0.05)
            (Path(__file__).parent / "later.txt").write_text("finished")

        @define_task
        async def run(event):
            event.context.wait_until(finish())
            return "scheduled"
    """,
}

DAILY = CronRoute(cron_path("0 12 * * 1-5"), "0 12 * * 1-5", ("a", "b"))
FAILING = CronRoute(cron_path("0 * * * *"), "0 * * * *", ("boom", "a"))
LATER = CronRoute(cron_path("30 1 * * *"), "30 1 * * *", ("later",))
SECRET = "s3cret-value"


def sync(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test body on a fresh event loop (no pytest plugin needed)."""

    @functools.wraps(test)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return wrapper


class Clock:
    def __init__(self) -> None:
        self.now = 1_790_000_000.0

    def __call__(self) -> float:
        self.now += 1.5
        return self.now


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return write_files(tmp_path / "project", FILES)


def make_app(root: Path, environ: dict[str, str], **options: Any) -> Any:
    entries = {
        name: TaskEntry(name, f"tasks/{name}.py") for name in ("a", "b", "boom", "later")
    }
    return vercel_app(Registry(root, entries), [DAILY, FAILING, LATER], environ=environ,
                      **options)


def runs(root: Path) -> list[dict[str, Any]]:
    lines = (root / "tasks" / "runs.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def cron_headers(secret: str | None = SECRET, schedule: str | None = None) -> list[tuple[str, str]]:
    headers = [("host", "app.vercel.app"), ("user-agent", "vercel-cron/1.0")]
    if secret is not None:
        headers.append(("authorization", f"Bearer {secret}"))
    if schedule is not None:
        headers.append(("x-vercel-cron-schedule", schedule))
    return headers


def test_cron_path_is_stable_and_distinct() -> None:
    assert cron_path("0 12 * * 1-5") == cron_path("0 12 * * 1-5")
    assert cron_path("0 12 * * 1-5") != cron_path("0 12 * * 1-4")
    assert cron_path("* * * * *").startswith(CRON_PREFIX)


@sync
async def test_right_secret_runs_tasks_with_fresh_scheduled_time(root: Path) -> None:
    app = make_app(root, {"CRON_SECRET": SECRET})
    dispatcher = CronDispatcher(
        Registry(root, {n: TaskEntry(n, f"tasks/{n}.py") for n in ("a", "b")}),
        [DAILY], environ={"CRON_SECRET": SECRET}, clock=Clock(),
    )
    first = await dispatcher.run(DAILY)
    second = await dispatcher.run(DAILY)
    assert first.status == second.status == 200
    assert first.json() == {"success": True, "tasks": {"a": "ok", "b": "ok"}}
    times = sorted({r["payload"]["scheduledTime"] for r in runs(root)})
    assert times == [1_790_000_001_500, 1_790_000_003_000]

    status, _, body = await call(app, "GET", DAILY.path,
                                 headers=cron_headers(schedule="0 12 * * 1-5"))
    assert (status, body) == (200, {"success": True, "tasks": {"a": "ok", "b": "ok"}})
    recorded = runs(root)[-2:]
    assert {r["task"] for r in recorded} == {"a", "b"}
    assert {r["trigger"] for r in recorded} == {"schedule:0 12 * * 1-5"}
    assert recorded[0]["payload"] == recorded[1]["payload"]  # one fire, one time
    assert set(recorded[0]["payload"]) == {"scheduledTime"}


@pytest.mark.parametrize("secret", ["wrong", "", None])
@sync
async def test_wrong_or_missing_secret_is_401_and_nothing_runs(root: Path,
                                                               secret: str | None) -> None:
    app = make_app(root, {"CRON_SECRET": SECRET})
    status, headers, body = await call(app, "GET", DAILY.path, headers=cron_headers(secret))
    assert status == 401
    assert body["error"] is True
    assert "bearer" in headers["www-authenticate"].lower()
    assert runs(root) == []


@sync
async def test_unset_cron_secret_fails_closed(root: Path) -> None:
    for environ in ({}, {"CRON_SECRET": "  "}):
        app = make_app(root, environ)
        status, _, body = await call(app, "GET", DAILY.path, headers=cron_headers(SECRET))
        assert status == 500
        assert "CRON_SECRET is not set" in body["message"]
        assert "allow_unauthenticated_cron" in body["message"]
    assert runs(root) == []


@sync
async def test_allow_unauthenticated_runs_without_secret(root: Path) -> None:
    app = make_app(root, {}, allow_unauthenticated_cron=True)
    status, _, body = await call(app, "GET", DAILY.path, headers=cron_headers(None))
    assert (status, body["success"]) == (200, True)
    # A secret that is set is still enforced.
    app = make_app(root, {"CRON_SECRET": SECRET}, allow_unauthenticated_cron=True)
    status, _, _ = await call(app, "GET", DAILY.path, headers=cron_headers(None))
    assert status == 401


@sync
async def test_schedule_header_must_match(root: Path) -> None:
    app = make_app(root, {"CRON_SECRET": SECRET})
    status, _, body = await call(app, "GET", DAILY.path,
                                 headers=cron_headers(schedule="0 * * * *"))
    assert status == 400
    assert "'0 * * * *'" in body["message"] and "'0 12 * * 1-5'" in body["message"]
    assert runs(root) == []


@sync
async def test_only_get(root: Path) -> None:
    app = make_app(root, {"CRON_SECRET": SECRET})
    status, headers, _ = await call(app, "POST", DAILY.path, headers=cron_headers())
    assert (status, headers["allow"]) == (405, "GET")
    assert runs(root) == []


@sync
async def test_failing_task_is_500_and_others_still_run(
    root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(root, {"CRON_SECRET": SECRET})
    with caplog.at_level(logging.ERROR, logger="taskpack.vercel"):
        status, _, body = await call(app, "GET", FAILING.path, headers=cron_headers())
    assert status == 500
    assert body == {"success": False, "tasks": {"boom": "error", "a": "ok"}}
    assert [r["task"] for r in runs(root)] == ["a"]
    assert "boom" in caplog.text and "kaboom" in caplog.text


@sync
async def test_wait_until_work_finishes_before_the_response(root: Path) -> None:
    app = make_app(root, {"CRON_SECRET": SECRET})
    status, _, _ = await call(app, "GET", LATER.path, headers=cron_headers())
    assert status == 200
    assert (root / "tasks" / "later.txt").read_text() == "finished"


@sync
async def test_other_paths_are_404(root: Path) -> None:
    app = make_app(root, {"CRON_SECRET": SECRET})
    for path in (CRON_PREFIX + "unknown", "/", "/api/index"):
        status, _, body = await call(app, "GET", path, headers=cron_headers())
        assert (status, body["statusCode"]) == (404, 404)


@sync
async def test_task_api_is_off_by_default(root: Path) -> None:
    app = make_app(root, {"CRON_SECRET": SECRET, "TASKPACK_TASKS_TOKEN": "tok"})
    status, _, body = await call(app, "POST", "/_nitro/tasks/a",
                                 headers=[("authorization", "Bearer tok")])
    assert status == 404 and "tasks_api" in body["message"]
    assert runs(root) == []


@sync
async def test_task_api_when_enabled_needs_the_token(root: Path) -> None:
    app = make_app(root, {}, tasks_api=True)
    status, _, body = await call(app, "POST", "/_nitro/tasks/a",
                                 headers=[("authorization", "Bearer anything")])
    assert status == 500 and "TASKPACK_TASKS_TOKEN is not set" in body["message"]

    app = make_app(root, {"TASKPACK_TASKS_TOKEN": "tok"}, tasks_api=True)
    status, _, _ = await call(app, "POST", "/_nitro/tasks/a")
    assert status == 401
    status, _, _ = await call(app, "POST", "/_nitro/tasks/a",
                              headers=[("authorization", "Bearer nope")])
    assert status == 401
    assert runs(root) == []
    status, _, body = await call(app, "POST", "/_nitro/tasks/a", query="x=1",
                                 headers=[("authorization", "Bearer tok")])
    assert (status, body) == (200, "done")
    assert runs(root)[-1]["payload"] == {"x": "1"}
