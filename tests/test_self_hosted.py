"""End to end: examples/basic built with each self-hosted preset, installed
into a fresh virtualenv from the output's requirements.txt alone (no
taskpack, no source checkout on the path), run as real processes and
driven over real HTTP. Their run history is read back with
``taskpack runs --db``; the task options are those of
tests/options_project.py."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import tomlkit

from taskpack.execution import payload_hash
from tests.helpers import REPO, copy_example, write_files
from tests.options_project import BUSY_TIMEOUT, FANOUT, FLAKY_TIMEOUT, add_option_tasks
from tests.servers import ServerProcess, free_port, read_records, venv_python, wait_for

TOKEN = "e2e-token"
TICK = "e2e:tick"
TICK_TRIGGER = "schedule:* * * * * *"
TASK_COUNT = 11  # examples/basic's 4, EXTRA_TASKS' 2, the option tasks' 5
RUNS = 300  # HTTP runs the cluster test sends
BURST = 60  # connections the cluster test opens at once
HISTORY = Path(".taskpack") / "store.sqlite"  # under the server's working directory
HEALTHY_STORE = {"ok": True, "backend": "sqlite", "error": None, "lost_runs": 0}

EXTRA_TASKS = {
    "tasks/e2e/tick.py": '''
        from jobs.record import record
        from taskpack import define_task

        @define_task(description="Record each scheduled fire")
        def run(event):
            record("e2e:tick", event.payload)
            return {"ok": True}
    ''',
    "tasks/e2e/slow.py": '''
        import asyncio

        from jobs.record import record
        from taskpack import define_task

        @define_task(description="Take two seconds")
        async def run(event):
            record("e2e:slow:start", event.payload)
            await asyncio.sleep(2)
            record("e2e:slow:end", event.payload)
            return {"slept": 2}
    ''',
}


def make_e2e_project(dest: Path, every_second: str = TICK) -> Path:
    """examples/basic plus a task fired every second (``every_second``), a
    2 s task and the option tasks, with the task API on."""
    copy_example(dest)
    write_files(dest, EXTRA_TASKS)
    add_option_tasks(dest)
    config_path = dest / "taskpack.toml"
    config = tomlkit.parse(config_path.read_text())
    config["scheduled_tasks"]["* * * * * *"] = every_second  # type: ignore[index]
    config["server"] = {"tasks_api": True, "shutdown_grace": 10}
    config_path.write_text(tomlkit.dumps(config))
    return dest


def build(project: Path, preset: str, output: Path) -> Path:
    taskpack = Path(sys.executable).with_name("taskpack")
    subprocess.run([str(taskpack), "build", "--root", str(project), "--preset", preset,
                    "--output", str(output)], check=True, capture_output=True)
    return output


@pytest.fixture(scope="session")
def e2e_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_e2e_project(tmp_path_factory.mktemp("e2e") / "project")


def make_bundle_venv(venv: Path, output: Path, *extra: str) -> Path:
    """A fresh virtualenv with what ``output``'s requirements.txt asks for,
    plus ``extra`` packages, and no taskpack."""
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {**os.environ, "PIP_CACHE_DIR": str(REPO / ".cache" / "pip"),
           "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run([str(venv_python(venv)), "-m", "pip", "install", "-q", "-r",
                    str(output / "server" / "requirements.txt"), *extra], check=True, env=env)
    probe = subprocess.run([str(venv_python(venv)), "-c", "import taskpack"],
                           capture_output=True, cwd=venv)
    assert probe.returncode != 0, "the bundle venv must not have taskpack installed"
    (venv / "requirements.sha256").write_text(_requirements_hash(output))
    return venv


@pytest.fixture(scope="session")
def bundle_venv(tmp_path_factory: pytest.TempPathFactory, e2e_project: Path) -> Iterator[Path]:
    """One fresh virtualenv for every end-to-end test, with exactly what a
    built output's requirements.txt asks for (each test checks its output
    asks for the same)."""
    output = build(e2e_project, "server", tmp_path_factory.mktemp("req") / "out")
    yield make_bundle_venv(tmp_path_factory.mktemp("bundle-venv") / "venv", output)


@pytest.fixture(scope="session")
def asgi_venv(tmp_path_factory: pytest.TempPathFactory, e2e_project: Path) -> Iterator[Path]:
    """The same for the ``asgi`` preset, whose requirements name no server
    of taskpack's choosing but the uvicorn of its documented command."""
    output = build(e2e_project, "asgi", tmp_path_factory.mktemp("req") / "out")
    yield make_bundle_venv(tmp_path_factory.mktemp("asgi-venv") / "venv", output)


def _requirements_hash(output: Path) -> str:
    return hashlib.sha256((output / "server" / "requirements.txt").read_bytes()).hexdigest()


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[ServerProcess]]:
    """Servers a test starts; killed at the end whatever happens."""
    servers: list[ServerProcess] = []
    yield servers
    for server in servers:
        server.stop()


def start(preset: str, e2e_project: Path, bundle_venv: Path, tmp_path: Path,
          started: list[ServerProcess], **env: str) -> tuple[ServerProcess, Path]:
    output = build(e2e_project, preset, tmp_path / "out")
    assert _requirements_hash(output) == (bundle_venv / "requirements.sha256").read_text()
    python = str(venv_python(bundle_venv))
    base = output / "server"
    if preset == "asgi":
        argv = [python, "-m", "uvicorn", "app:app", "--app-dir", str(base),
                "--host", "127.0.0.1", "--port", "{port}"]
    else:
        argv = [python, str(base / "index.py")]
    port = free_port()
    records = tmp_path / "records.jsonl"
    server = ServerProcess(
        [arg.format(port=port) for arg in argv],
        {"PORT": str(port), "TASKPACK_TASKS_TOKEN": TOKEN,
         "TASKPACK_EXAMPLE_RECORD": str(records), **env},
        tmp_path / "server.log", cwd=tmp_path)
    started.append(server)
    return server, records


def api(server: ServerProcess, name: str, payload: dict[str, Any] | None = None,
        token: str | None = TOKEN) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.post(f"{server.url}/_nitro/tasks/{name}", json={"payload": payload or {}},
                      headers=headers, timeout=30)


TASKPACK_LINE = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z "


def assert_taskpack_lines(logs: str) -> None:
    """taskpack's own lines are in its format whichever server runs the app:
    the scheduler's start and one line per run (the HTTP run and the ticks)."""
    assert re.search(TASKPACK_LINE + r"info +server: scheduler started in process \d+ ", logs,
                     re.M), logs
    assert re.search(TASKPACK_LINE + r"info +run: task=echo:payload trigger=http outcome=ok "
                     r"attempts=1 duration_ms=[\d.]+ run_id=[0-9a-f]{32}$", logs, re.M), logs
    assert re.search(TASKPACK_LINE + r'info +run: task=e2e:tick trigger="schedule:\* \* \* \* '
                     r'\* \*" outcome=ok', logs, re.M), logs


def children(pid: int) -> set[int]:
    """The pids of a process's children (the cluster's workers)."""
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True,
                         text=True, check=True).stdout
    return {int(child) for child in out.split()}


def tick_times(records: Path) -> list[int]:
    return [r["payload"]["scheduledTime"] for r in read_records(records) if r["task"] == TICK]


def history(db: Path, task: str | None = None) -> list[dict[str, Any]]:
    """``taskpack runs --db DB --json`` (newest first), as a user reads it."""
    taskpack = Path(sys.executable).with_name("taskpack")
    argv = [str(taskpack), "runs", *([task] if task else []), "--db", str(db), "--json",
            "--limit", "10000"]
    proc = subprocess.run(argv, capture_output=True, text=True, check=True)
    runs: list[dict[str, Any]] = json.loads(proc.stdout)
    return runs


@pytest.mark.parametrize("preset", ["server", "asgi"])
def test_single_process_presets(preset: str, e2e_project: Path, request: pytest.FixtureRequest,
                                tmp_path: Path, started: list[ServerProcess]) -> None:
    venv = request.getfixturevalue("asgi_venv" if preset == "asgi" else "bundle_venv")
    server, records = start(preset, e2e_project, venv, tmp_path, started)
    health = server.wait_healthy()
    scheduler = health.pop("scheduler")
    assert health == {"status": "ok", "tasks": TASK_COUNT, "store": HEALTHY_STORE}
    assert scheduler == {"schedules": scheduler["schedules"], "claims": "store", "store": "ok",
                         "error": None, "missedFires": 0}

    unauthorised = api(server, "echo:payload", {"a": 1}, token=None)
    assert unauthorised.status_code == 401
    assert api(server, "echo:payload", {"a": 1}, token="wrong").status_code == 401
    response = api(server, "echo:payload", {"a": 1})
    assert (response.status_code, response.json()) == (200, {"result": {"a": 1}})
    listing = httpx.get(f"{server.url}/_nitro/tasks",
                        headers={"authorization": f"Bearer {TOKEN}"}).json()
    assert {"cron": "* * * * * *", "tasks": [TICK]} in listing["scheduledTasks"]

    # The every-second schedule fires, each run with its own fire time.
    times = wait_for(lambda: tick_times(records)[:3] if len(tick_times(records)) >= 3 else None,
                     10, "three scheduled runs")
    assert len(set(times)) == len(times)
    assert all(t % 1000 == 0 for t in times)
    assert times == sorted(times)

    # SIGTERM while a 2 s task runs: it finishes, the caller gets its result.
    result: dict[str, httpx.Response] = {}
    caller = threading.Thread(target=lambda: result.update(r=api(server, "e2e:slow")))
    caller.start()
    wait_for(lambda: any(r["task"] == "e2e:slow:start" for r in read_records(records)) or None,
             10, "the slow task to start")
    status = server.terminate()
    caller.join(15)
    assert result["r"].status_code == 200 and result["r"].json() == {"slept": 2}
    assert any(r["task"] == "e2e:slow:end" for r in read_records(records))
    # `python index.py` exits 0; uvicorn's own CLI re-raises the SIGTERM it
    # handled gracefully, as it does for any app.
    assert status == (0 if preset == "server" else -signal.SIGTERM), server.logs()
    if preset == "asgi":
        assert "Application shutdown complete" in server.logs()  # uvicorn ran the lifespan
    assert re.search(TASKPACK_LINE + r"info +server: scheduler stopped in process", server.logs(),
                     re.M), server.logs()
    assert_taskpack_lines(server.logs())

    # Every run is in the history file under the working directory (the
    # default `.taskpack/store.sqlite`), written by the shutdown at the latest.
    runs = history(tmp_path / HISTORY)
    ticks = [r for r in runs if r["task"] == TICK]
    assert len(ticks) == len(tick_times(records)) >= 3
    assert {(r["trigger"], r["outcome"], r["attempts"]) for r in ticks} == {
        (TICK_TRIGGER, "ok", 1)}
    (echo,) = [r for r in runs if r["task"] == "echo:payload"]
    assert (echo["trigger"], echo["outcome"], echo["attempts"]) == ("http", "ok", 1)
    (slow,) = [r for r in runs if r["task"] == "e2e:slow"]
    assert (slow["trigger"], slow["outcome"]) == ("http", "ok")
    # It ran its full 2 s sleep. The bundle's loop is uvloop, whose timers run
    # on libuv's millisecond clock cached at each loop iteration: a sleep may
    # end up to 1 ms early by perf_counter (1999.6 ms was seen in CI).
    assert 1999 <= slow["duration_ms"] < 10_000
    assert slow["duration_ms"] == pytest.approx(
        (slow["finished_at"] - slow["started_at"]) * 1000, abs=1)
    assert not (tmp_path / "out" / "server" / ".taskpack").exists()  # never in the bundle


def test_options_and_history_across_a_restart(e2e_project: Path, bundle_venv: Path,
                                              tmp_path: Path,
                                              started: list[ServerProcess]) -> None:
    """Retries, timeouts (define_task's and the config's) and max_concurrency
    in the built server, over HTTP; their runs in the history, which a
    rebuild and a restart keep."""
    server, records = start("server", e2e_project, bundle_venv, tmp_path, started)
    server.wait_healthy()
    flaky = api(server, "opts:flaky", {"via": "http"})
    assert (flaky.status_code, flaky.json()) == (200, {"attempt": 3})
    assert [r["payload"] for r in read_records(records) if r["task"].startswith("opts:flaky")] \
        == [{"attempt": 1, "via": "http"}, {"attempt": 1},  # cancelled at its timeout
            {"attempt": 2, "via": "http"}, {"attempt": 3, "via": "http"}]
    busy = api(server, "opts:busy")
    assert busy.status_code == 504
    assert busy.json()["message"] == f"Task `opts:busy` timed out after {BUSY_TIMEOUT:g}s " \
        "(attempt 1)"
    assert api(server, "opts:sync_retry").json() == {"attempt": 3}
    fanout = api(server, "opts:fanout").json()
    assert fanout == {"results": list(range(FANOUT)), "peak": 3}
    wait_for(lambda: len(tick_times(records)) >= 2 or None, 10, "two scheduled runs")
    assert server.terminate() == 0, server.logs()

    db = tmp_path / HISTORY
    before = history(db)
    last = {r["task"]: r for r in reversed(before)}  # the newest run of each task
    assert {task: (r["outcome"], r["attempts"], r["trigger"]) for task, r in last.items()
            if task.startswith("opts:")} == {
        "opts:flaky": ("ok", 3, "http"), "opts:busy": ("timeout", 1, "http"),
        "opts:sync_retry": ("ok", 3, "http"), "opts:fanout": ("ok", 1, "http"),
        "opts:limited": ("ok", 1, "manual")}  # run_task() from opts:fanout
    assert last["opts:busy"]["error"] == f"TaskTimeoutError: {busy.json()['message']}"
    assert FLAKY_TIMEOUT * 1000 <= last["opts:flaky"]["duration_ms"] < 5000
    assert BUSY_TIMEOUT * 1000 <= last["opts:busy"]["duration_ms"] < 250  # not the 0.3 s spin
    assert len([r for r in before if r["task"] == "opts:limited"]) == FANOUT
    assert {r["trigger"] for r in before if r["task"] == TICK} == {TICK_TRIGGER}

    # Rebuilt (the bundle folder is replaced) and restarted: the history is kept.
    server, _ = start("server", e2e_project, bundle_venv, tmp_path, started)
    server.wait_healthy()
    assert api(server, "echo:payload", {"after": "restart"}).status_code == 200
    assert server.terminate() == 0, server.logs()
    after = history(db)
    assert after[-len(before):] == before
    assert "echo:payload" in {r["task"] for r in after[:-len(before)]}


def test_sigterm_lets_a_scheduled_run_finish(bundle_venv: Path, tmp_path: Path,
                                            started: list[ServerProcess]) -> None:
    project = make_e2e_project(tmp_path / "project", every_second="e2e:slow")
    server, records = start("server", project, bundle_venv, tmp_path, started)
    server.wait_healthy()

    def runs(kind: str) -> list[int]:
        return [r["payload"]["scheduledTime"] for r in read_records(records)
                if r["task"] == f"e2e:slow:{kind}"]

    wait_for(lambda: runs("start") or None, 10, "a scheduled run of the 2 s task")
    assert server.terminate() == 0, server.logs()
    assert runs("start") and runs("end") == runs("start")


def test_task_api_refuses_to_start_without_token(e2e_project: Path, bundle_venv: Path,
                                                 tmp_path: Path,
                                                 started: list[ServerProcess]) -> None:
    server, _ = start("server", e2e_project, bundle_venv, tmp_path, started,
                      TASKPACK_TASKS_TOKEN="")
    assert server.process.wait(30) == 2
    assert server.logs().startswith("error: TASKPACK_TASKS_TOKEN is empty: the task API is on")


def test_cluster_fires_each_tick_once_through_a_killed_worker(e2e_project: Path, bundle_venv: Path,
                                                     tmp_path: Path,
                                                     started: list[ServerProcess]) -> None:
    db = tmp_path / "shared" / "runs.sqlite"
    server, records = start("server_cluster", e2e_project, bundle_venv, tmp_path, started,
                            WORKERS="3", TASKPACK_DATABASE_URL=f"sqlite:///{db}")
    server.wait_healthy()
    workers = children(server.process.pid)
    assert len(workers) == 3  # each runs the scheduler; claims make each fire run once

    time.sleep(5)
    counts = Counter(tick_times(records))
    assert len(counts) >= 4
    assert set(counts.values()) == {1}, counts

    victim = min(workers)
    os.kill(victim, signal.SIGKILL)
    killed_at = time.time() * 1000
    resumed = wait_for(lambda: [t for t in tick_times(records) if t > killed_at] or None, 5,
                       "ticks after the kill")
    assert resumed[0] - killed_at < 5000
    time.sleep(2)
    counts = Counter(tick_times(records))
    assert set(counts.values()) == {1}, counts
    replaced = wait_for(lambda: c if len(c := children(server.process.pid)) == 3 else None, 10,
                        "a replacement worker")
    assert victim not in replaced

    # 300 runs from 6 clients at once, a new connection each (so all 3 workers
    # share them; opts:limited runs in parallel mode: no call joins another).
    def send(part: int) -> list[int]:
        with httpx.Client(limits=httpx.Limits(max_keepalive_connections=0),
                          headers={"authorization": f"Bearer {TOKEN}"}, timeout=30) as client:
            return [client.post(f"{server.url}/_nitro/tasks/opts:limited",
                                json={"payload": {"i": i}}).status_code
                    for i in range(part, RUNS, 6)]

    with ThreadPoolExecutor(6) as pool:
        statuses = [code for codes in pool.map(send, range(6)) for code in codes]
    assert statuses == [200] * RUNS
    # A burst of connections opened at once (as a load generator does),
    # then one run on each: every worker must get its share of them.
    port = int(server.url.rsplit(":", 1)[1])
    burst = [http.client.HTTPConnection("127.0.0.1", port, timeout=30) for _ in range(BURST)]
    for connection in burst:
        connection.connect()
    for i, connection in enumerate(burst):
        connection.request("POST", "/_nitro/tasks/opts:limited", json.dumps({"payload": {"b": i}}),
                           {"authorization": f"Bearer {TOKEN}",
                            "content-type": "application/json"})
        assert connection.getresponse().read() and connection.sock is not None
        connection.close()
    assert server.terminate() == 0
    limited = history(db, "opts:limited")
    bursts = {payload_hash({"b": i}) for i in range(BURST)}
    assert sorted(r["payload_hash"] for r in limited if r["payload_hash"] not in bursts) == sorted(
        payload_hash({"i": i}) for i in range(RUNS))
    # The burst's connections are spread over the workers (on Linux each
    # listens on its own SO_REUSEPORT socket; on one shared socket, the
    # first worker to wake accepted most of them).
    served = Counter(r["host"] for r in limited if r["payload_hash"] in bursts)
    assert sum(served.values()) == BURST and len(served) == 3, served
    assert min(served.values()) >= BURST // 10, served
    # The workers share one history file: each tick recorded once (told apart
    # by the hash of its payload, the fire time). Only a run the killed
    # worker had not written yet may be missing.
    ticks = history(db, TICK)
    assert {(r["trigger"], r["outcome"]) for r in ticks} == {(TICK_TRIGGER, "ok")}
    stored = Counter(r["payload_hash"] for r in ticks)
    assert set(stored.values()) == {1}
    fired = {payload_hash({"scheduledTime": t}): t for t in tick_times(records)}
    assert set(stored) <= set(fired)
    lost = [t for h, t in fired.items() if h not in stored]
    assert len(lost) <= 1 and all(abs(t - killed_at) < 2000 for t in lost), lost


def test_cluster_workers_die_with_their_supervisor(e2e_project: Path, bundle_venv: Path,
                                                   tmp_path: Path,
                                                   started: list[ServerProcess]) -> None:
    server, _ = start("server_cluster", e2e_project, bundle_venv, tmp_path, started,
                      WORKERS="2")
    server.wait_healthy()
    workers = children(server.process.pid)
    assert len(workers) == 2
    server.process.kill()
    server.process.wait(10)

    def alive() -> set[int]:
        running = set()
        for pid in workers:
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except FileNotFoundError:
                continue
            if "zombie" not in status.lower():
                running.add(pid)
        return running

    wait_for(lambda: True if not alive() else None, 15, "the orphaned workers to exit")


def test_preview_runs_the_built_server(e2e_project: Path, tmp_path: Path,
                                       started: list[ServerProcess]) -> None:
    output = build(e2e_project, "server", tmp_path / "out")
    port = free_port()
    taskpack = Path(sys.executable).with_name("taskpack")
    server = ServerProcess([str(taskpack), "preview", "--output", str(output)],
                           {"PORT": str(port), "TASKPACK_TASKS_TOKEN": TOKEN,
                            "PATH": os.environ["PATH"]},
                           tmp_path / "preview.log", cwd=tmp_path)
    started.append(server)
    assert server.wait_healthy()["tasks"] == TASK_COUNT
    assert api(server, "echo:payload", {"b": 2}).json() == {"result": {"b": 2}}
    assert server.terminate() == 0
    # Loopback unless told (production's default is 0.0.0.0); --port wins over $PORT.
    assert f"(on 127.0.0.1:{port})" in server.logs()
    assert f" server: serving on http://127.0.0.1:{port}\n" in server.logs()
    flagged = free_port()
    server = ServerProcess([str(taskpack), "preview", "--output", str(output),
                            "--port", str(flagged), "--host", "127.0.0.1"],
                           {"PORT": str(port), "TASKPACK_TASKS_TOKEN": TOKEN,
                            "PATH": os.environ["PATH"]},
                           tmp_path / "preview2.log", cwd=tmp_path)
    server.port, server.url = flagged, f"http://127.0.0.1:{flagged}"
    started.append(server)
    assert server.wait_healthy()["tasks"] == TASK_COUNT
    assert server.terminate() == 0


ASGI_SERVERS = {
    "hypercorn": ["-m", "hypercorn", "app:app", "--bind", "127.0.0.1:{port}"],
    "granian": ["-m", "granian", "--interface", "asgi", "--host", "127.0.0.1",
                "--port", "{port}", "app:app"],
}


@pytest.mark.parametrize("server_name", sorted(ASGI_SERVERS))
def test_asgi_bundle_under_other_servers(server_name: str, e2e_project: Path,
                                         tmp_path_factory: pytest.TempPathFactory,
                                         tmp_path: Path, started: list[ServerProcess]) -> None:
    """The README's hypercorn and granian commands for the asgi preset: the
    API answers and the lifespan runs (and stops) the scheduler."""
    output = build(e2e_project, "asgi", tmp_path / "out")
    venv = make_bundle_venv(tmp_path_factory.mktemp(server_name) / "venv", output, server_name)
    port = free_port()
    records = tmp_path / "records.jsonl"
    server = ServerProcess(
        [str(venv_python(venv)), *(arg.format(port=port) for arg in ASGI_SERVERS[server_name])],
        {"PORT": str(port), "PYTHONPATH": str(output / "server"),
         "TASKPACK_TASKS_TOKEN": TOKEN, "TASKPACK_EXAMPLE_RECORD": str(records)},
        tmp_path / "server.log", cwd=tmp_path)
    started.append(server)
    health = server.wait_healthy()
    scheduler = health.pop("scheduler")
    assert health == {"status": "ok", "tasks": TASK_COUNT, "store": HEALTHY_STORE}
    assert scheduler == {"schedules": scheduler["schedules"], "claims": "store", "store": "ok",
                         "error": None, "missedFires": 0}
    response = api(server, "echo:payload", {"via": server_name})
    assert (response.status_code, response.json()) == (200, {"result": {"via": server_name}})
    assert api(server, "echo:payload", token=None).status_code == 401
    times = wait_for(lambda: tick_times(records)[:2] if len(tick_times(records)) >= 2 else None,
                     10, "two scheduled runs")
    assert len(set(times)) == 2
    server.terminate()
    # The lifespan's shutdown ran: it stops the scheduler and closes the run
    # history, which writes every run still queued.
    ticks = [r for r in history(tmp_path / HISTORY) if r["task"] == TICK]
    assert len(ticks) == len(tick_times(records)) >= 2
    assert_taskpack_lines(server.logs())
