"""``taskpack dev`` as a real subprocess on a free port, in a copy of
``examples/basic``, driven with a real HTTP client (httpx) and the real CLI."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from taskpack.builder.dev import DevServer
from taskpack.builder.devclient import DevServerGone, fetch_listing, run_remote
from taskpack.builder.devstate import DevState
from taskpack.builder.project import load_project
from taskpack.http import asgi_app
from tests.asgi_driver import call
from tests.helpers import copy_example, write_files

TASKPACK = str(Path(sys.executable).with_name("taskpack"))

EXTRA_FILES = {
    "tasks/slow.py": """
        import asyncio
        from pathlib import Path

        from taskpack import define_task

        @define_task(description="Sleep half a second")
        async def run(event):
            with (Path(__file__).parent.parent / "slow-runs.txt").open("a") as fh:
                fh.write("ran\\n")
            await asyncio.sleep(0.5)
            return {"slept": 0.5}
    """,
    "tasks/boom.py": """
        from taskpack import define_task

        @define_task
        def run(event):
            raise ValueError("it broke")
    """,
    "tasks/unjson.py": """
        from taskpack import define_task

        @define_task
        def run(event):
            return {"set": {1, 2}}
    """,
    "tasks/tick.py": """
        import json
        from pathlib import Path

        from taskpack import define_task

        @define_task(description="Record each scheduled fire")
        def run(event):
            with (Path(__file__).parent.parent / "ticks.txt").open("a") as fh:
                fh.write(json.dumps({"payload": event.payload,
                                     "trigger": event.context.trigger}) + "\\n")
    """,
}
TODO_CONFIG = '\n[tasks.todo]\ndescription = "Not written yet"\n'
TICK_SCHEDULE = '"* * * * * *" = "tick"\n'


class Dev:
    """A running ``taskpack dev`` with its output captured in files."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.out = root.parent / f"{root.name}-dev.out"
        self.err = root.parent / f"{root.name}-dev.err"
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.proc = subprocess.Popen(
                [TASKPACK, "dev", "--port", "0", "--root", str(root)],
                stdout=out, stderr=err, env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        state = wait_for(lambda: _read_json(root / ".taskpack" / "dev.json"), what="dev.json",
                         check=self.alive)
        self.url = f"http://127.0.0.1:{state['port']}"
        self.state = state

    def alive(self) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(f"taskpack dev exited {self.proc.returncode}: {self.output()}")

    def output(self) -> str:
        return self.out.read_text() + self.err.read_text()

    def stop(self, sig: int = signal.SIGINT) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=15)


def _read_json(path: Path) -> dict[str, object] | None:
    try:
        data: dict[str, object] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data


T = TypeVar("T")


def wait_for(probe: Callable[[], T | None], *, what: str, timeout: float = 10.0,
                check: Callable[[], None] = lambda: None) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        check()
        value = probe()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def project_copy(dest: Path, *, tick: bool = True) -> Path:
    """examples/basic with EXTRA_FILES, a task listed without a handler and
    (``tick``) the ``tick`` task scheduled every second."""
    copy_example(dest)
    write_files(dest, EXTRA_FILES)
    config = dest / "taskpack.toml"
    text = config.read_text()
    if tick:
        text = text.replace("[scheduled_tasks]\n", "[scheduled_tasks]\n" + TICK_SCHEDULE)
    config.write_text(text + TODO_CONFIG)
    return dest


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dev]:
    server = Dev(project_copy(tmp_path_factory.mktemp("dev") / "basic"))
    yield server
    assert server.stop(signal.SIGINT) == 0, server.output()
    assert not (server.root / ".taskpack" / "dev.json").exists()
    assert "taskpack dev: stopped" in server.output()


@pytest.fixture(scope="module")
def quiet_dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dev]:
    """A dev server without the every-second schedule, so its listing (which
    carries each task's last run) holds still long enough to compare."""
    server = Dev(project_copy(tmp_path_factory.mktemp("quiet") / "basic", tick=False))
    yield server
    assert server.stop(signal.SIGINT) == 0, server.output()


def cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TASKPACK, *args, "--root", str(root)], capture_output=True,
                          text=True, timeout=30)


# -- the API over HTTP -------------------------------------------------------------


def test_start_banner_and_state(dev: Dev) -> None:
    assert f"taskpack dev: serving {dev.url}/_nitro/tasks (9 tasks, 4 schedules)" in dev.output()
    assert dev.state["pid"] == dev.proc.pid and dev.state["host"] == "127.0.0.1"


def test_listing_has_descriptions(dev: Dev) -> None:
    response = httpx.get(f"{dev.url}/_nitro/tasks")
    assert response.status_code == 200
    data = response.json()
    assert data["tasks"]["db:migrate"]["description"] == "Run database migrations"
    assert data["tasks"]["echo:payload"]["description"] == "Echo the payload back."
    assert data["tasks"]["todo"] == {"description": "Not written yet", "lastRun": None}
    assert all(set(info) == {"description", "lastRun"} for info in data["tasks"].values())
    assert {"cron": "0 * * * *", "tasks": ["db:migrate"]} in data["scheduledTasks"]


def test_listing_has_each_tasks_last_run(dev: Dev) -> None:
    """Nitro's listing plus "lastRun": the newest HTTP or scheduled run."""
    httpx.post(f"{dev.url}/_nitro/tasks/echo:payload", json={"payload": {"n": 1}})
    httpx.post(f"{dev.url}/_nitro/tasks/boom")
    began = time.time()
    tasks = httpx.get(f"{dev.url}/_nitro/tasks").json()["tasks"]
    echo, boom = tasks["echo:payload"]["lastRun"], tasks["boom"]["lastRun"]
    assert (echo["trigger"], echo["outcome"], echo["attempts"]) == ("http", "ok", 1)
    assert (boom["outcome"], boom["error"]) == ("error", "ValueError: it broke")
    assert echo["started_at"] <= boom["started_at"] <= began
    assert boom["duration_ms"] >= 0
    tick = wait_for(lambda: httpx.get(f"{dev.url}/_nitro/tasks").json()["tasks"]["tick"]
                    ["lastRun"], what="a scheduled run in the listing")
    assert (tick["trigger"], tick["outcome"]) == ("schedule:* * * * * *", "ok")
    assert tasks["todo"]["lastRun"] is None
    # Each run names the process that ran it (many hosts: docs/many-hosts.md).
    host = f"{socket.gethostname()}:{dev.proc.pid}"
    assert echo["host"] == boom["host"] == tick["host"] == host


def test_query_payload(dev: Dev) -> None:
    response = httpx.get(f"{dev.url}/_nitro/tasks/echo:payload?field=value&array=1&array=2")
    assert response.status_code == 200
    assert response.json() == {"result": {"field": "value", "array": ["1", "2"]}}


def test_post_body_overrides_query(dev: Dev) -> None:
    response = httpx.post(f"{dev.url}/_nitro/tasks/echo%3Apayload?field=value&other=q",
                          json={"payload": {"field": "body", "n": [1, 2]}})
    assert response.json() == {"result": {"field": "body", "other": "q", "n": [1, 2]}}


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        ("GET", "/_nitro/tasks/nope", None, 404, "Task `nope` is not available!"),
        ("POST", "/_nitro/tasks/todo", None, 501, "Task `todo` is not implemented!"),
        ("POST", "/_nitro/tasks/echo:payload", b"{oops", 400, "request body is not valid JSON"),
        ("POST", "/_nitro/tasks/echo:payload", b'{"payload": 3}', 400,
         '"payload" must be a JSON object, got a number'),
        ("DELETE", "/_nitro/tasks/echo:payload", None, 405, "method DELETE is not allowed here"),
        ("POST", "/_nitro/tasks/echo:payload", b"x" * (1024 * 1024 + 1), 413,
         "request body is over the limit of 1048576 bytes"),
        ("GET", "/_nitro/tasks/boom", None, 500, "it broke"),
        ("GET", "/_nitro/tasks/unjson", None, 500,
         "task `unjson` returned a value that is not JSON-serialisable"),
        ("GET", "/elsewhere", None, 404, "no route for /elsewhere"),
    ],
)
def test_error_statuses(dev: Dev, method: str, path: str, body: bytes | None, status: int,
                        message: str) -> None:
    response = httpx.request(method, dev.url + path, content=body)
    assert response.status_code == status
    data = response.json()
    assert (data["error"], data["statusCode"]) == (True, status)
    assert data["message"].startswith(message)


def test_dev_500_carries_the_traceback(dev: Dev) -> None:
    data = httpx.get(f"{dev.url}/_nitro/tasks/boom").json()
    assert data["exception"] == "ValueError"
    assert 'raise ValueError("it broke")' in data["traceback"]


def test_schedules_fire_with_their_fire_time(dev: Dev) -> None:
    ticks = dev.root / "ticks.txt"

    def fired() -> list[dict[str, object]] | None:
        lines = ticks.read_text().splitlines() if ticks.exists() else []
        return [json.loads(line) for line in lines] if len(lines) >= 2 else None

    runs = wait_for(fired, what="two scheduled runs", timeout=5)
    times = [run["payload"]["scheduledTime"] for run in runs]  # type: ignore[index]
    assert all(t % 1000 == 0 for t in times) and times == sorted(set(times))
    assert {run["trigger"] for run in runs} == {"schedule:* * * * * *"}


def test_health_as_built_servers_answer_it(dev: Dev) -> None:
    response = httpx.get(f"{dev.url}/_health")
    health = response.json()
    scheduler = health.pop("scheduler")  # as in a built server: fires claimed in the store
    assert (response.status_code, health) == (200, {
        "status": "ok", "tasks": 9,
        "store": {"ok": True, "backend": "sqlite", "error": None, "lost_runs": 0}})
    assert (scheduler["claims"], scheduler["store"]) == ("store", "ok")
    assert httpx.get(f"{dev.url}/elsewhere").status_code == 404


def test_runs_are_logged_one_line_each(dev: Dev) -> None:
    line = " info    run: task=echo:payload trigger=http outcome=ok attempts=1 "
    before = dev.output().count(line)
    httpx.get(f"{dev.url}/_nitro/tasks/echo:payload?logged=yes")
    wait_for(lambda: dev.output().count(line) > before, what="log line")
    assert dev.output().count(line) == before + 1
    assert "logged=yes" not in dev.output()  # no access log unless asked for


def test_non_loopback_clients_are_refused(tmp_path: Path) -> None:
    # The dev server's own app, called at the ASGI level with a foreign peer
    # address (a second non-loopback interface is not available here).
    dev_server = DevServer(load_project(project_copy(tmp_path / "p")), grace=1)
    app = asgi_app(dev_server.api)
    status, _, data = asyncio.run(call(app, "GET", "/_nitro/tasks", client=("192.0.2.10", 5555)))
    assert (status, data["message"]) == (403, "the task API answers loopback clients only")
    assert asyncio.run(call(app, "GET", "/_nitro/tasks", client=("127.0.0.1", 5555)))[0] == 200


def test_concurrent_requests_run_the_body_once(dev: Dev) -> None:
    async def burst() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(limits=limits, timeout=10) as client:
            return await asyncio.gather(
                *(client.get(f"{dev.url}/_nitro/tasks/slow?i={i}") for i in range(100))
            )

    started = time.perf_counter()
    responses = asyncio.run(burst())
    elapsed = time.perf_counter() - started
    assert [r.status_code for r in responses] == [200] * 100
    assert all(r.json() == {"slept": 0.5} for r in responses)
    assert (dev.root / "slow-runs.txt").read_text() == "ran\n"
    assert elapsed < 2.5, f"100 joined requests took {elapsed:.2f}s"


# -- the CLI through the dev server ------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("task", "list"),
        ("task", "list", "--json"),
        ("task", "run", "echo:payload", "--payload", '{"ü": [1, 2.5, null], "b": true}'),
        ("task", "run", "db:migrate"),
        ("task", "run", "boom"),
        ("task", "run", "unjson"),
        ("task", "run", "nope"),
        ("task", "run", "todo"),
    ],
)
def test_cli_output_is_the_same_through_the_server(quiet_dev: Dev,
                                                   args: tuple[str, ...]) -> None:
    dev = quiet_dev
    ran = args[1] == "run" and args[2] not in ("nope", "todo")  # those two never start
    run_line = f" run: task={args[2]} trigger=http " if ran else ""
    before = dev.output().count(run_line)
    if args[1] == "list":
        # Last runs to list: one that succeeded, one that failed.
        httpx.post(f"{dev.url}/_nitro/tasks/echo:payload", json={"payload": {"n": 1}})
        httpx.get(f"{dev.url}/_nitro/tasks/boom")
        remote, local = listed_at_rest(dev, args)
        assert "last run: ok at " in remote.stdout or '"outcome": "ok"' in remote.stdout
        assert "last run: error at " in remote.stdout or '"outcome": "error"' in remote.stdout
    else:
        remote = cli(dev.root, *args)
        local = cli(dev.root, *args, "--local")
    assert (remote.returncode, remote.stdout) == (local.returncode, local.stdout)
    # What the task itself prints goes to the CLI's stderr locally, to the
    # server's output remotely, and the CLI says so; everything else on
    # stderr is the same.
    task_print = "Running DB migration task... {}\n"
    remote_err = remote.stderr
    if args[1] == "run":
        note = (f"taskpack: running `{args[2]}` on the dev server at {dev.url}; its output "
                "is in that server's terminal (--local runs it here)\n")
        assert remote_err.startswith(note)
        remote_err = remote_err.removeprefix(note)
    assert remote_err == local.stderr.replace(task_print, "")
    if ran:  # the server ran it (and logged the run)
        wait_for(lambda: dev.output().count(run_line) > before, what="server log of the run")


def listed_at_rest(dev: Dev, args: tuple[str, ...]) -> tuple[
        subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
    """``task list`` through the server and ``--local``, taken while the
    server's listing did not change (a cron may fire a run in between: the
    server is asked before and after, and the pair is taken again then)."""
    for _ in range(5):
        remote = cli(dev.root, *args)
        local = cli(dev.root, *args, "--local")
        if cli(dev.root, *args).stdout == remote.stdout:
            return remote, local
    raise AssertionError("the dev server's listing kept changing")


def test_cli_payload_error_is_checked_before_the_server(dev: Dev) -> None:
    result = cli(dev.root, "task", "run", "echo:payload", "--payload", "[1]")
    assert (result.returncode, result.stderr) == (
        2, "error: --payload: expected a JSON object, got an array\n")


def test_stale_state_file_is_removed(tmp_path: Path) -> None:
    root = project_copy(tmp_path / "p")
    state = root / ".taskpack" / "dev.json"
    state.parent.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for pid, port in ((dead.pid, 1), (os.getpid(), _closed_port())):
        state.write_text(json.dumps({"pid": pid, "host": "127.0.0.1", "port": port,
                                     "started": "2026-01-01T00:00:00+00:00"}))
        result = cli(root, "task", "run", "echo:payload", "--payload", '{"x": 1}')
        assert (result.returncode, result.stdout) == (0, '{"result": {"x": 1}}\n')
        assert not state.exists()
    state.write_text("{not json")
    assert cli(root, "task", "list").returncode == 0
    assert not state.exists()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- reload and shutdown -------------------------------------------------------------


def test_reload_and_graceful_stop(tmp_path: Path) -> None:
    root = project_copy(tmp_path / "p")
    dev = Dev(root)
    try:
        client = httpx.Client(base_url=dev.url, timeout=10)

        # A new task file is listed and runnable without a restart.
        write_files(root, {
            "helpers/__init__.py": "",
            "helpers/flavour.py": 'FLAVOUR = "vanilla"\n',
            "tasks/fresh/task.py": """
                from helpers.flavour import FLAVOUR
                from taskpack import define_task

                @define_task(description="Just added")
                def run(event):
                    return {"version": 1, "flavour": FLAVOUR}
            """,
        })
        wait_for(lambda: "fresh:task" in client.get("/_nitro/tasks").json()["tasks"],
                 what="new task listed", timeout=5)
        assert client.get("/_nitro/tasks/fresh:task").json() == {"version": 1,
                                                                 "flavour": "vanilla"}

        # Editing it, or a project module it imports, re-imports them.
        path = root / "tasks/fresh/task.py"
        path.write_text(path.read_text().replace('"version": 1', '"version": 2'))
        wait_for(lambda: client.get("/_nitro/tasks/fresh:task").json()["version"] == 2,
                 what="edited task reloaded", timeout=5)
        (root / "helpers/flavour.py").write_text('FLAVOUR = "mint"\n')
        latest = {"version": 2, "flavour": "mint"}
        wait_for(lambda: client.get("/_nitro/tasks/fresh:task").json() == latest,
                 what="edited helper reloaded", timeout=5)

        # A broken config is reported; the last good project keeps serving.
        config = root / "taskpack.toml"
        good = config.read_text()
        config.write_text(good + '\n[scheduled_tasks2]\n"@daily" = "fresh:task"\n')
        wait_for(lambda: "unknown key" in dev.output(), what="config error printed", timeout=5)
        assert "error: taskpack.toml: scheduled_tasks2: unknown key" in dev.output()
        assert "keeping the last good version" in dev.output()
        assert client.get("/_nitro/tasks/fresh:task").json() == latest
        # ...while the CLI reports the broken config, not the server's listing.
        listed = cli(root, "task", "list")
        assert (listed.returncode, listed.stdout) == (2, "")
        assert listed.stderr == "error: taskpack.toml: scheduled_tasks2: unknown key " \
                                "(did you mean 'scheduled_tasks'?)\n"

        # Fixing it (with a new schedule) reloads.
        config.write_text(good.replace('"0 * * * *" = "db:migrate"',
                                       '"0 * * * *" = ["db:migrate", "fresh:task"]'))
        wait_for(lambda: {"cron": "0 * * * *", "tasks": ["db:migrate", "fresh:task"]}
                 in client.get("/_nitro/tasks").json()["scheduledTasks"],
                 what="fixed config reloaded", timeout=5)

        # Deleting a task file removes the task.
        (root / "tasks/boom.py").unlink()
        wait_for(lambda: client.get("/_nitro/tasks/boom").status_code == 404,
                 what="deleted task gone", timeout=5)

        # SIGTERM while a task runs: the run completes, then the server exits 0.
        async def slow_then_stop() -> httpx.Response:
            async with httpx.AsyncClient(base_url=dev.url, timeout=10) as aclient:
                pending = asyncio.ensure_future(aclient.get("/_nitro/tasks/slow"))
                await asyncio.sleep(0.2)
                dev.proc.send_signal(signal.SIGTERM)
                return await pending

        response = asyncio.run(slow_then_stop())
        assert (response.status_code, response.json()) == (200, {"slept": 0.5})
        assert dev.proc.wait(timeout=15) == 0
        assert not (root / ".taskpack" / "dev.json").exists()
        client.close()
    finally:
        dev.stop(signal.SIGKILL)


def test_start_errors_are_one_line(tmp_path: Path) -> None:
    root = project_copy(tmp_path / "p")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli(root, "dev", "--port", str(port))
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: --port: cannot listen on 127.0.0.1:{port}: ")
    (root / "taskpack.toml").write_text('scheduledTasks = {}\n')
    result = cli(root, "dev", "--port", "0")
    assert (result.returncode, result.stderr) == (
        2, "error: taskpack.toml: scheduledTasks: unknown key (did you mean 'scheduled_tasks'?)\n")
    assert not (root / ".taskpack" / "dev.json").exists()


def test_a_server_gone_since_it_was_found_is_reported_as_such() -> None:
    gone = DevState(os.getpid(), "127.0.0.1", _closed_port(), "2026-01-01T00:00:00+00:00")
    with pytest.raises(DevServerGone):
        run_remote(gone, "echo:payload", {})
    with pytest.raises(DevServerGone):
        fetch_listing(gone)
