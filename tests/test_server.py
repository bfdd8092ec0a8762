"""The runtime's server pieces in-process: settings from the environment,
the bundle's ASGI app (health, API on/off, mounting, lifespan order) and the
cluster's scheduler lease on a real file lock; and a built ``server``
bundle's start as a process (its store opened once, or refused in one
line)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from taskpack import set_registry
from taskpack.builder.build import build
from taskpack.cluster import workers_from_env
from taskpack.registry import Registry, ScheduleEntry, TaskEntry
from taskpack.server import (
    BundleApp,
    ServerConfigError,
    ServerOptions,
    address_from_env,
    bundle_store,
    token_from_env,
)
from tests.asgi_driver import call
from tests.helpers import stored_runs, write_files
from tests.servers import ServerProcess, free_port


def registry(tmp_path: Path, schedules: tuple[ScheduleEntry, ...] = ()) -> Registry:
    write_files(tmp_path, {"tasks/echo.py": """
        from taskpack import define_task

        @define_task
        def run(event):
            return {"echo": event.payload}
    """})
    return Registry(tmp_path, {"echo": TaskEntry("echo", "tasks/echo.py")}, schedules)


@pytest.mark.parametrize(("env", "address"), [
    ({}, ("0.0.0.0", 3000)),
    ({"HOST": "127.0.0.1", "PORT": "8080"}, ("127.0.0.1", 8080)),
    ({"HOST": "a", "PORT": "1", "TASKPACK_HOST": "b", "TASKPACK_PORT": "2"}, ("b", 2)),
])
def test_address_from_env(env: dict[str, str], address: tuple[str, int]) -> None:
    assert address_from_env(env) == address


@pytest.mark.parametrize("port", ["http", "70000", "-1"])
def test_bad_port(port: str) -> None:
    with pytest.raises(ServerConfigError, match=f"^PORT: expected a port number .*{port!r}"):
        address_from_env({"PORT": port})


def test_token_from_env() -> None:
    assert token_from_env(ServerOptions(tasks_api=False), {"TASKPACK_TASKS_TOKEN": "x"}) is None
    assert token_from_env(ServerOptions(tasks_api=True), {"TASKPACK_TASKS_TOKEN": "x"}) == "x"
    with pytest.raises(ServerConfigError, match=r"^TASKPACK_TASKS_TOKEN is empty"):
        token_from_env(ServerOptions(tasks_api=True), {"TASKPACK_TASKS_TOKEN": "  "})


def test_bundle_store(tmp_path: Path) -> None:
    """Relative SQLite paths resolve against the working directory (never
    the bundle); $TASKPACK_DATABASE_URL wins over [store] url, which wins
    over the deprecated history_path; nothing is opened or created here."""
    from taskpack.store.memory import MemoryStore
    from taskpack.store.sqlite import SQLiteStore

    def path_of(manifest: dict[str, object], env: dict[str, str]) -> Path:
        store = bundle_store(manifest, env, cwd=tmp_path)
        assert isinstance(store, SQLiteStore)
        return store.path

    legacy = {"store": {"history_path": "state/runs.sqlite", "history_limit": 5}}
    assert path_of(legacy, {}) == tmp_path / "state" / "runs.sqlite"
    assert bundle_store(legacy, {}, cwd=tmp_path).history_limit == 5
    assert path_of({}, {}) == tmp_path / ".taskpack" / "store.sqlite"
    configured = {"store": {"url": "sqlite:///db/x.sqlite", "history_path": "state/runs.sqlite"}}
    assert path_of(configured, {}) == tmp_path / "db" / "x.sqlite"
    absolute = tmp_path / "abs" / "h.sqlite"
    assert path_of(configured, {"TASKPACK_DATABASE_URL": f"sqlite:///{absolute}"}) == absolute
    assert path_of(legacy, {"TASKPACK_HISTORY_PATH": "env.sqlite"}) == tmp_path / "env.sqlite"
    assert isinstance(bundle_store({}, {"TASKPACK_DATABASE_URL": "memory://"}), MemoryStore)
    assert not list(tmp_path.iterdir())
    with pytest.raises(ServerConfigError, match=r"^TASKPACK_DATABASE_URL: store URL "
                                                r"'redis://u:\*\*\*@h/0': unknown scheme"):
        bundle_store({}, {"TASKPACK_DATABASE_URL": "redis://u:pw@h/0"})


def test_workers_from_env() -> None:
    assert workers_from_env({}) == (os.cpu_count() or 1)
    assert workers_from_env({"WORKERS": "3"}) == 3
    with pytest.raises(ServerConfigError, match=r"^WORKERS: expected a positive integer"):
        workers_from_env({"WORKERS": "0"})


def test_health_and_api_off(tmp_path: Path) -> None:
    app = BundleApp(registry(tmp_path), token=None).app
    assert asyncio.run(call(app, "GET", "/_health"))[::2] == (200, {
        "status": "ok", "tasks": 1,
        "store": {"ok": True, "backend": "memory", "error": None, "lost_runs": 0}})
    status, _, body = asyncio.run(call(app, "POST", "/_nitro/tasks/echo"))
    assert status == 404 and "tasks_api" in body["message"]
    assert asyncio.run(call(app, "GET", "/elsewhere"))[0] == 404


def test_api_on_needs_the_token(tmp_path: Path) -> None:
    app = BundleApp(registry(tmp_path), token="t0k").app
    assert asyncio.run(call(app, "POST", "/_nitro/tasks/echo", query="a=1"))[0] == 401
    status, _, body = asyncio.run(call(
        app, "POST", "/_nitro/tasks/echo", query="a=1",
        headers=[("host", "x"), ("authorization", "Bearer t0k")]))
    assert (status, body) == (200, {"echo": {"a": "1"}})


async def mounted_call(app: object, path: str, root_path: str) -> tuple[int, object]:
    """A request as Starlette >= 0.33 passes it to a mounted app: the full
    path, with the mount prefix in ``root_path``."""
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "root_path": root_path,
             "query_string": b"", "headers": [], "client": ("127.0.0.1", 1)}
    await app(scope, receive, send)  # type: ignore[operator]
    return sent[0]["status"], sent[1]["body"]  # type: ignore[return-value]


def test_mountable_under_a_prefix(tmp_path: Path) -> None:
    bundle = BundleApp(registry(tmp_path), token=None)
    assert asyncio.run(mounted_call(bundle.mountable, "/jobs/_health", "/jobs"))[0] == 200
    assert asyncio.run(mounted_call(bundle.mountable, "/_health", "/jobs"))[0] == 200


class RecordingScheduler:
    """Stands in for taskpack.scheduler.Scheduler to observe the order of
    lifecycle calls (the real one runs in the end-to-end tests)."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    def start(self) -> None:
        self.log.append("start")

    async def stop(self, grace: float) -> None:
        self.log.append(f"stop {grace}")

    def status(self) -> dict[str, Any]:
        return {"recording": True}


def test_lifespan_starts_and_stops_the_scheduler(tmp_path: Path) -> None:
    log: list[str] = []
    schedules = (ScheduleEntry("* * * * *", ("echo",)),)
    bundle = BundleApp(registry(tmp_path, schedules), token=None, shutdown_grace=7,
                       make_scheduler=lambda _: RecordingScheduler(log))

    async def lifecycle() -> None:
        async with bundle.lifespan():
            assert log == ["start"]
        assert log == ["start", "stop 7"]

    asyncio.run(lifecycle())


def test_a_server_starts_the_scheduler_once_it_serves(tmp_path: Path) -> None:
    """With ``schedule_when_serving`` (the bundles' own servers), the
    lifespan startup leaves the scheduler to :meth:`BundleApp.serving`."""
    log: list[str] = []
    schedules = (ScheduleEntry("* * * * *", ("echo",)),)
    bundle = BundleApp(registry(tmp_path, schedules), token=None, shutdown_grace=7,
                       make_scheduler=lambda _: RecordingScheduler(log),
                       schedule_when_serving=True)

    async def lifecycle() -> None:
        async with bundle.lifespan():
            assert log == []
            bundle.serving()
            bundle.serving()
            assert log == ["start"]
        assert log == ["start", "stop 7"]
        bundle.serving()  # after shutdown: nothing to start
        assert log == ["start", "stop 7"]

    asyncio.run(lifecycle())


def test_a_scheduler_started_when_serving_counts_fires_from_the_startup(tmp_path: Path) -> None:
    schedules = (ScheduleEntry("* * * * *", ("echo",)),)
    bundle = BundleApp(registry(tmp_path, schedules), token=None, schedule_when_serving=True)

    async def lifecycle() -> tuple[float, float, float]:
        before = time.time()
        async with bundle.lifespan():
            serving = time.time()
            bundle.serving()
            since: float = bundle.scheduler.since  # type: ignore[union-attr]
        return before, since, serving

    before, since, serving = asyncio.run(lifecycle())
    assert before <= since <= serving


def test_no_schedules_no_scheduler(tmp_path: Path) -> None:
    log: list[str] = []
    bundle = BundleApp(registry(tmp_path), token=None,
                       make_scheduler=lambda _: RecordingScheduler(log))

    async def lifecycle() -> None:
        async with bundle.lifespan():
            pass

    asyncio.run(lifecycle())
    assert log == []


def test_built_bundle_records_runs_outside_itself(basic_example: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A built bundle's runs go to ``[server] history_path`` under the
    working directory, bounded by ``history_limit``, written at shutdown."""
    config = basic_example / "taskpack.toml"
    config.write_text(config.read_text() + 'history_path = "state/runs.sqlite"\n'
                      "history_limit = 2\n")
    base = build(basic_example, preset="server", output=tmp_path / "out").output / "server"
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    bundle = BundleApp.load(base, ServerOptions(tasks_api=True), env={"TASKPACK_TASKS_TOKEN": "t"})

    async def main() -> None:
        for n in range(3):
            await bundle.registry.run("echo:payload", {"n": n})
        await bundle.shutdown()

    try:
        asyncio.run(main())
    finally:
        set_registry(None)
    runs = stored_runs(cwd / "state" / "runs.sqlite")
    assert [(r.task, r.outcome) for r in runs] == [("echo:payload", "ok")] * 2
    assert not list(base.rglob("*.sqlite"))


def built_server(project: Path, tmp_path: Path) -> Path:
    """``project`` built with the ``server`` preset; its ``index.py``."""
    out = tmp_path / "out"
    taskpack = Path(sys.executable).with_name("taskpack")
    subprocess.run([str(taskpack), "build", "--root", str(project), "--preset", "server",
                    "--output", str(out)],
                   check=True, capture_output=True, timeout=120)
    return out / "server" / "index.py"


def test_a_built_server_opens_its_store_once(basic_example: Path, tmp_path: Path) -> None:
    """The store is opened once before serving (not checked, closed and
    opened again): a SQLite path that cannot be written is logged once,
    and ``/_health`` says so."""
    config = basic_example / "taskpack.toml"
    config.write_text(config.read_text() + 'history_path = "blocker/runs.sqlite"\n')
    index = built_server(basic_example, tmp_path)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / "blocker").write_text("a file, not a folder\n")
    server = ServerProcess([sys.executable, str(index)],
                           {"PORT": str(free_port()), "HOST": "127.0.0.1",
                            "TASKPACK_TASKS_TOKEN": "t"}, tmp_path / "server.log", cwd=cwd)
    try:
        health = server.wait_healthy()
        assert server.terminate() == 0, server.logs()
    finally:
        server.stop()
    assert health["store"]["ok"] is False and "blocker is not a folder" in health["store"]["error"]
    assert server.logs().count("runs are not recorded until it can be written") == 1, \
        server.logs()


def test_a_built_server_refuses_a_store_that_is_not_one(basic_example: Path,
                                                        tmp_path: Path) -> None:
    index = built_server(basic_example, tmp_path)
    store = tmp_path / ".taskpack" / "store.sqlite"
    store.parent.mkdir()
    store.write_bytes(b"this is not a database\n" * 200)
    done = subprocess.run([sys.executable, str(index)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60,
                          env={**os.environ, "PORT": "0", "TASKPACK_TASKS_TOKEN": "t"})
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1] == f"error: store {store}: file is not a database"
