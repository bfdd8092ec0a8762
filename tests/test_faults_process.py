"""Faults of issue 11 about processes: shutdown with a sync task that never
returns (SIGTERM to a built server and to ``taskpack dev``), a slow task
import, a dev reload while another process holds the SQLite lock, two
``taskpack dev`` on one project, and a ``server_cluster`` whose scheduled
task raises ``SystemExit``. Real processes, real signals, real files;
nothing waits on a fixed sleep. docs/faults.md lists which test covers
which item."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from taskpack import TaskTimeoutError, define_task
from taskpack.registry import Registry
from taskpack.task import TaskEvent
from tests.helpers import recorded_runs, write_files
from tests.servers import ServerProcess, free_port, wait_for
from tests.test_faults_http import DevProcess

TASKPACK = str(Path(sys.executable).with_name("taskpack"))
GRACE = 2
BOUND = 6  # how much longer than the grace period a stop may take on a loaded machine

HANG = """
import time
from pathlib import Path

from taskpack import define_task

@define_task
def run(event):
    (Path(__file__).parent.parent / "{marker}").write_text("started")
    time.sleep(600)
"""

ECHO = """
from taskpack import define_task

@define_task
async def run(event):
    return event.payload
"""


def hang_project(root: Path) -> Path:
    return write_files(root, {
        "taskpack.toml": f"""
            [scheduled_tasks]
            "* * * * * *" = "stuck"

            [server]
            tasks_api = true
            shutdown_grace = {GRACE}
        """,
        "tasks/hang.py": HANG.format(marker="hang-started"),
        "tasks/stuck.py": HANG.format(marker="stuck-started"),
    })


def runs_json(db: Path) -> list[dict[str, Any]]:
    result = subprocess.run([TASKPACK, "runs", "--db", str(db), "--json"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    runs: list[dict[str, Any]] = json.loads(result.stdout)
    return runs


def call_in_background(url: str, **kwargs: Any) -> threading.Thread:
    def call() -> None:
        # Cut off by the shutdown: what matters is the server's record.
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(url, timeout=120, **kwargs)

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    return thread


# -- item 7: a sync task that never returns does not keep the process alive ----------


def stop_within_grace(proc: subprocess.Popen[bytes], log: str | Any) -> float:
    began = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(GRACE + BOUND)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        raise AssertionError(f"still running {GRACE + BOUND}s after SIGTERM "
                             f"(shutdown_grace = {GRACE}):\n{log()}") from None
    assert code == 0, log()
    return time.monotonic() - began


def test_built_server_exits_within_the_grace_despite_hung_sync_tasks(tmp_path: Path) -> None:
    project = hang_project(tmp_path / "project")
    out = tmp_path / "out"
    subprocess.run([TASKPACK, "build", "--root", str(project), "--preset", "server",
                    "--output", str(out)], check=True, capture_output=True, timeout=120)
    port = free_port()
    server = ServerProcess([sys.executable, str(out / "server" / "index.py")],
                           {"PORT": str(port), "TASKPACK_TASKS_TOKEN": "t"},
                           tmp_path / "server.log", cwd=tmp_path)
    try:
        server.wait_healthy()
        call_in_background(f"{server.url}/_nitro/tasks/hang",
                           headers={"authorization": "Bearer t"})
        # The bundle's task files write their markers beside its tasks/.
        bundled = out / "server" / "project"
        wait_for(lambda: (bundled / "hang-started").exists() or None, 30, "hang")
        wait_for(lambda: (bundled / "stuck-started").exists() or None, 30, "stuck")
        stop_within_grace(server.process, server.logs)
    finally:
        server.stop()
    runs = {run["task"]: run for run in runs_json(tmp_path / ".taskpack" / "store.sqlite")}
    assert runs["hang"]["outcome"] == "cancelled" and runs["hang"]["trigger"] == "http"
    assert runs["stuck"]["outcome"] == "cancelled"
    assert runs["stuck"]["trigger"] == "schedule:* * * * * *"


def test_dev_server_exits_within_the_grace_despite_hung_sync_tasks(tmp_path: Path) -> None:
    dev = DevProcess(hang_project(tmp_path / "project"))
    try:
        call_in_background(f"{dev.url}/_nitro/tasks/hang")
        wait_for(lambda: (dev.root / "hang-started").exists() or None, 30, "hang")
        wait_for(lambda: (dev.root / "stuck-started").exists() or None, 30, "stuck")
        stop_within_grace(dev.proc, dev.output)
    finally:
        dev.stop()
    runs = {run["task"]: run for run in runs_json(dev.root / ".taskpack" / "store.sqlite")}
    assert (runs["hang"]["outcome"], runs["stuck"]["outcome"]) == ("cancelled", "cancelled")


# -- item 9: slow imports run off the loop; a loop-blocking async task times out ---------


SLOW_IMPORT = """
import time
from pathlib import Path

from taskpack import define_task

_here = Path(__file__).parent.parent
(_here / "importing").write_text("yes")
for _ in range(600):  # a slow import: until the test releases it (at most 60 s)
    if (_here / "release").exists():
        break
    time.sleep(0.1)

@define_task
async def run(event):
    return "imported"
"""


def test_a_slow_task_import_does_not_stall_other_requests(tmp_path: Path) -> None:
    root = write_files(tmp_path / "project", {"tasks/slow.py": SLOW_IMPORT,
                                               "tasks/echo.py": ECHO})
    dev = DevProcess(root)
    try:
        call_in_background(f"{dev.url}/_nitro/tasks/slow")
        wait_for(lambda: (root / "importing").exists() or None, 30, "the import to start")
        try:
            response = httpx.post(f"{dev.url}/_nitro/tasks/echo", json={"payload": {"a": 1}},
                                  timeout=15)
        except httpx.TimeoutException:
            raise AssertionError("the server stalled while a task module imported") from None
        assert (response.status_code, response.json()) == (200, {"a": 1})
        (root / "release").write_text("go")
        slow = httpx.post(f"{dev.url}/_nitro/tasks/slow", timeout=60)
        assert (slow.status_code, slow.json()) == (200, "imported")
    finally:
        (root / "release").write_text("go")
        assert dev.stop() == 0, dev.output()


def test_an_async_task_blocking_the_loop_past_its_timeout_timed_out(tmp_path: Path) -> None:
    async def blocks(event: TaskEvent) -> str:
        time.sleep(0.6)  # blocks the loop: the timer cannot fire
        return "late"

    registry = Registry.of({"blocks": define_task(blocks, timeout=0.2)}, tmp_path)
    with pytest.raises(TaskTimeoutError, match=r"timed out after 0.2s"):
        asyncio.run(registry.run("blocks"))
    (run,) = recorded_runs(registry, "blocks")
    assert run.outcome == "timeout"


# -- item 8: a reload never blocks the event loop ------------------------------------------


LOCKER = """
import sqlite3, sys, time
from pathlib import Path

db, here = sys.argv[1], Path(sys.argv[2])
conn = sqlite3.connect(db, isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
(here / "locked").write_text("yes")
for _ in range(1200):
    if (here / "unlock").exists():
        break
    time.sleep(0.05)
conn.execute("COMMIT")
"""


def test_a_reload_while_another_process_holds_the_history_lock(tmp_path: Path) -> None:
    root = write_files(tmp_path / "project", {"tasks/echo.py": ECHO})
    dev = DevProcess(root)
    locker: subprocess.Popen[bytes] | None = None
    try:
        assert httpx.post(f"{dev.url}/_nitro/tasks/echo", timeout=30).status_code == 200
        db = root / ".taskpack" / "store.sqlite"
        wait_for(lambda: runs_json(db) or None, 30, "the first run in the history")
        locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(db), str(tmp_path)])
        wait_for(lambda: (tmp_path / "locked").exists() or None, 30, "the lock")
        # A run whose record now waits for the lock, then an edit: the reload
        # must not wait for the store (the new registry shares it).
        assert httpx.post(f"{dev.url}/_nitro/tasks/echo", timeout=30).status_code == 200
        (root / "tasks" / "echo.py").write_text(ECHO + "\n# edited\n")
        wait_for(lambda: "taskpack dev: reloaded" in dev.output() or None, 15,
                 "the reload (it must not wait for the lock)")
        try:
            response = httpx.post(f"{dev.url}/_nitro/tasks/echo", json={"payload": {"b": 2}},
                                  timeout=10)
        except httpx.TimeoutException:
            raise AssertionError("the event loop is blocked by the reload") from None
        assert response.json() == {"b": 2}
        (tmp_path / "unlock").write_text("go")
        locker.wait(30)
        wait_for(lambda: len(runs_json(db)) >= 3 or None, 40, "every run written")
    finally:
        (tmp_path / "unlock").write_text("go")
        if locker is not None:
            locker.wait(30)
        assert dev.stop() == 0, dev.output()


# -- item 18: one taskpack dev per project ---------------------------------------------------


def test_a_second_dev_server_refuses_to_start_naming_the_first(tmp_path: Path) -> None:
    root = write_files(tmp_path / "project", {
        "tasks/pid.py": """
            import os

            from taskpack import define_task

            @define_task
            def run(event):
                return os.getpid()
        """,
        "taskpack.toml": '[scheduled_tasks]\n"@daily" = "pid"\n',
    })
    first = DevProcess(root)
    state = root / ".taskpack" / "dev.json"
    try:
        before = state.read_text()
        second = subprocess.run([TASKPACK, "dev", "--port", "0", "--root", str(root)],
                                capture_output=True, text=True, timeout=60)
        assert second.returncode == 2, second.stderr
        assert second.stderr == (
            f"error: taskpack dev is already running for this project (pid {first.proc.pid} "
            f"at {first.url}); stop it first, or use it: `taskpack task run` goes through it\n")
        assert state.read_text() == before  # neither overwritten nor removed
        result = subprocess.run([TASKPACK, "task", "run", "pid", "--root", str(root)],
                                capture_output=True, text=True, timeout=60)
        # The CLI still finds the first server and runs the task there.
        assert (result.returncode, result.stdout) == (0, f"{first.proc.pid}\n")
    finally:
        assert first.stop() == 0, first.output()
    assert not state.exists()
    # Once the first has stopped (or died), a new one starts.
    third = DevProcess(root)
    third.proc.kill()  # kill -9: the claim dies with the process
    third.proc.wait(10)
    fourth = DevProcess(root)
    assert fourth.stop() == 0, fourth.output()


def test_the_cli_leaves_dev_json_of_a_live_owner(tmp_path: Path) -> None:
    """A dev server that owns the project but does not accept connections
    (busy, starting, stopping) keeps its dev.json: only the owner removes it."""
    root = write_files(tmp_path / "project", {"tasks/echo.py": ECHO})
    dev = DevProcess(root)
    state = root / ".taskpack" / "dev.json"
    try:
        dev.proc.send_signal(signal.SIGSTOP)  # alive, owns the lock, answers nothing
        data = json.loads(state.read_text())
        closed = free_port()
        state.write_text(json.dumps({**data, "port": closed}))  # refuses connections
        result = subprocess.run([TASKPACK, "task", "run", "echo", "--payload", '{"y": 2}',
                                 "--root", str(root)], capture_output=True, text=True,
                                timeout=60)
        assert (result.returncode, result.stdout) == (0, '{"y": 2}\n')  # ran in-process
        assert json.loads(state.read_text())["port"] == closed
    finally:
        dev.proc.send_signal(signal.SIGCONT)
        dev.stop()


# -- item 2 in server_cluster: the scheduling worker survives a task's SystemExit -------------


def test_cluster_scheduling_worker_survives_a_scheduled_system_exit(tmp_path: Path) -> None:
    project = write_files(tmp_path / "project", {
        "taskpack.toml": '[scheduled_tasks]\n"* * * * * *" = "quit"\n',
        "tasks/quit.py": """
            import os
            import sys
            from pathlib import Path

            from taskpack import define_task

            @define_task
            def run(event):
                with (Path(os.environ["TICKS"])).open("a") as fh:
                    fh.write(f"{os.getpid()}\\n")
                sys.exit(1)
        """,
    })
    out = tmp_path / "out"
    subprocess.run([TASKPACK, "build", "--root", str(project), "--preset", "server_cluster",
                    "--output", str(out)], check=True, capture_output=True, timeout=120)
    ticks = tmp_path / "ticks.txt"
    server = ServerProcess([sys.executable, str(out / "server" / "index.py")],
                           {"PORT": str(free_port()), "WORKERS": "2", "TICKS": str(ticks)},
                           tmp_path / "server.log", cwd=tmp_path)
    try:
        server.wait_healthy()
        lines = wait_for(lambda: (ticks.exists() and len(ticks.read_text().split()) >= 4
                                  and ticks.read_text().split()) or None, 30, "four ticks")
        # Any of the 2 workers may run a fire's job (fires are claimed in the
        # store); a third pid would be a replacement for a worker that died.
        assert len(set(lines)) <= 2, f"a worker died and was replaced: {lines}"
        assert "exited" not in server.logs(), server.logs()
        assert server.terminate() == 0, server.logs()
    finally:
        server.stop()
    assert os.path.exists(ticks)
