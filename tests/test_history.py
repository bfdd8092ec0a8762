"""The run history on the store: what the registry records, concurrent
writer processes, ``taskpack runs``, history files of taskpack 0.1, and
the faults of issue 11 (items 1 and 14): a history that cannot be written
never hangs or fails anything, and reading one never writes it."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from taskpack import Registry, RunRecord, define_task, set_registry
from taskpack.builder.cli import main
from taskpack.store.sqlite import SQLiteStore
from tests.helpers import REPO, MakeProject, recorded_runs
from tests.servers import free_port, wait_for

LEGACY = REPO / "tests" / "data" / "history-0.1.sqlite"
TASKPACK = str(Path(sys.executable).parent / "taskpack")


@pytest.fixture(autouse=True)
def no_current_registry() -> Iterator[None]:
    yield
    set_registry(None)


def record(task: str, n: int, outcome: str = "ok") -> RunRecord:
    return RunRecord(f"{task}-{n}", task, "manual", "0" * 16, 1000.0 + n, 1000.5 + n, 500.0,
                     1, outcome, None if outcome == "ok" else f"RuntimeError: {n}")  # type: ignore[arg-type]


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_registry_records_every_outcome_with_payload_result_and_traceback(
        tmp_path: Path) -> None:
    async def ok(event: object) -> str:
        await asyncio.sleep(0.02)
        return "fine"

    def bad(event: object) -> None:
        raise ValueError("nope")

    reg = Registry.of({"ok": define_task(ok), "bad": define_task(bad)}, root=tmp_path,
                      store="sqlite:///.taskpack/store.sqlite")
    asyncio.run(reg.run("ok", {"a": [1, 2]}, context={"trigger": "schedule:*/5 * * * *"}))
    with pytest.raises(ValueError):
        asyncio.run(reg.run("bad", {"x": 1}, context={"trigger": "http"}))
    runs = recorded_runs(reg)
    assert [(r.task, r.trigger, r.outcome, r.attempts, r.error) for r in runs] == [
        ("bad", "http", "error", 1, "ValueError: nope"),
        ("ok", "schedule:*/5 * * * *", "ok", 1, None),
    ]
    assert runs[1].duration_ms >= 20
    assert (runs[1].payload, runs[1].result, runs[1].traceback) == ({"a": [1, 2]}, "fine", None)
    assert runs[0].payload == {"x": 1} and runs[0].result is None
    assert runs[0].traceback is not None and "ValueError: nope" in runs[0].traceback
    assert runs[0].host.endswith(f":{os.getpid()}")
    asyncio.run(reg.close())
    with sqlite3.connect(tmp_path / ".taskpack" / "store.sqlite") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


WRITER = """
import asyncio, sys
from pathlib import Path
from taskpack import Registry, define_task

async def body(event):
    await asyncio.sleep(0)
    return event.payload["n"]

async def main():
    reg = Registry.of({"work": define_task(body, concurrency="parallel")},
                      root=Path(sys.argv[1]), store="sqlite:///.taskpack/store.sqlite")
    await reg.open()
    results = await asyncio.gather(*(reg.run("work", {"n": n}) for n in range(100)))
    assert results == list(range(100))
    await reg.close()

asyncio.run(main())
"""


def test_concurrent_writer_processes_lose_no_rows(tmp_path: Path) -> None:
    script = tmp_path / "writer.py"
    script.write_text(textwrap.dedent(WRITER))
    procs = [subprocess.Popen([sys.executable, str(script), str(tmp_path)], cwd=REPO)
             for _ in range(3)]
    assert [proc.wait(timeout=120) for proc in procs] == [0, 0, 0]
    with sqlite3.connect(tmp_path / ".taskpack" / "store.sqlite") as conn:
        assert conn.execute("SELECT COUNT(*), COUNT(DISTINCT id) FROM runs").fetchone() == (300,
                                                                                           300)
        assert conn.execute("SELECT outcome, COUNT(*) FROM runs GROUP BY outcome").fetchall() == [
            ("ok", 300)]


def _record_in_child(store: SQLiteStore) -> None:
    store.record_run(record("child", 1))
    asyncio.run(store.close())


def test_sqlite_store_is_usable_after_fork(tmp_path: Path) -> None:
    import multiprocessing

    store = SQLiteStore("sqlite:///h.sqlite", root=tmp_path)

    async def parent_first() -> None:
        store.record_run(record("parent", 1))
        assert await store.flush(10)  # the thread and connection exist before the fork

    asyncio.run(parent_first())
    child = multiprocessing.get_context("fork").Process(target=_record_in_child, args=(store,))
    child.start()
    child.join(30)
    assert child.exitcode == 0

    async def parent_again() -> list[str]:
        store.record_run(record("parent", 2))
        await store.flush(10)
        return sorted(r.id for r in (await store.list_runs()).runs)

    assert asyncio.run(parent_again()) == ["child-1", "parent-1", "parent-2"]
    asyncio.run(store.close())


# -- config, manifest and CLI ----------------------------------------------------

FLAKY = """
from taskpack import RetryPolicy, define_task

ATTEMPTS = []

@define_task(description="Fails twice", retries=RetryPolicy(max_attempts=1, min_delay=0.001))
def run(event):
    ATTEMPTS.append(event.attempt)
    if event.attempt < 3:
        raise RuntimeError(f"attempt {event.attempt} failed")
    return {"attempt": event.attempt}
"""

BROKEN = """
from taskpack import define_task

@define_task
def run(event):
    raise RuntimeError("always")
"""

OK = "from taskpack import define_task\n\n@define_task\ndef run(e):\n    return 1\n"


def test_config_options_win_and_runs_are_listed(make_project: MakeProject) -> None:
    root = make_project({
        "taskpack.toml": """
            [tasks."flaky"]
            retries = 2
            timeout = 30

            [server]
            history_limit = 50
        """,
        "tasks/flaky.py": FLAKY,
        "tasks/broken.py": BROKEN,
    })
    code, out, err = invoke("task", "run", "flaky", "--root", str(root))
    assert (code, out) == (0, '{"attempt": 3}\n'), err
    code, _, err = invoke("task", "run", "broken", "--root", str(root))
    assert code == 1
    code, out, _ = invoke("runs", "--json", "--root", str(root))
    runs = json.loads(out)
    assert [(r["task"], r["outcome"], r["attempts"], r["trigger"]) for r in runs] == [
        ("broken", "error", 1, "manual"), ("flaky", "ok", 3, "manual")]
    assert runs[0]["error"] == "RuntimeError: always"
    code, out, _ = invoke("runs", "flaky", "--root", str(root))
    header, row = out.splitlines()
    assert header.split() == ["STARTED", "(UTC)", "TASK", "TRIGGER", "OUTCOME", "ATTEMPTS",
                              "DURATION", "HOST", "ERROR"]
    assert row.split()[2:6] == ["flaky", "manual", "ok", "3"]
    code, out, _ = invoke("runs", "--limit", "1", "--root", str(root))
    assert len(out.splitlines()) == 2 and "broken" in out


def test_store_url_from_config_history_path_and_db_option(make_project: MakeProject) -> None:
    root = make_project({
        "taskpack.toml": '[server]\nhistory_path = "var/runs.db"\n',
        "tasks/ok.py": OK,
    })
    assert invoke("runs", "--root", str(root))[1].startswith("No runs recorded (")
    assert invoke("task", "run", "ok", "--root", str(root))[0] == 0
    assert (root / "var" / "runs.db").is_file()  # the deprecated key still names the file
    code, out, _ = invoke("runs", "--json", "--db", str(root / "var" / "runs.db"))
    assert code == 0 and json.loads(out)[0]["task"] == "ok"
    code, _, err = invoke("runs", "--db", str(root / "missing.db"))
    assert code == 2 and "--db:" in err and "does not exist" in err
    (root / "notes.txt").write_text("not a database\n" * 100)
    code, out, err = invoke("runs", "--db", str(root / "notes.txt"))
    assert (code, out) == (2, "")
    assert err == (f"error: --db: {root / 'notes.txt'} is not a taskpack store: "
                   "file is not a database\n")
    (root / "taskpack.toml").write_text('[store]\nurl = "sqlite:///db/tp.sqlite"\n')
    assert invoke("task", "run", "ok", "--root", str(root))[0] == 0
    assert (root / "db" / "tp.sqlite").is_file()


def test_bad_store_settings(make_project: MakeProject) -> None:
    root = make_project({"taskpack.toml": "[server]\nhistory_limit = 0\n"})
    code, _, err = invoke("task", "list", "--root", str(root))
    assert (code, err) == (2, "error: taskpack.toml: server.history_limit: must be at least 1, "
                              "got 0\n")
    (root / "taskpack.toml").write_text('[store]\nurl = "mysql://me:hunter2@db/x"\n')
    code, _, err = invoke("task", "list", "--root", str(root))
    assert code == 2
    assert err.startswith("error: taskpack.toml: store.url: expected a store URL (")
    assert "hunter2" not in err and "me:***@db" in err


def test_manifest_carries_options_and_store(make_project: MakeProject) -> None:
    from taskpack.builder.manifest import build_manifest
    from taskpack.builder.project import load_project
    from taskpack.store.memory import MemoryStore

    root = make_project({
        "taskpack.toml": '[tasks."x"]\nmax_concurrency = 3\ntimeout = 2.5\n'
                         '[store]\nurl = "postgresql:///app?host=/run/postgresql"\n',
        "tasks/x.py": BROKEN,
    })
    manifest = build_manifest(load_project(root))
    assert manifest["tasks"]["x"]["options"] == {"max_concurrency": 3, "timeout": 2.5}
    assert manifest["store"] == {"url": "postgresql:///app?host=/run/postgresql",
                                 "history_path": None, "history_limit": 1000}
    reg = Registry.from_manifest(manifest, root)
    options = reg.runner("x").options
    assert (options.concurrency, options.max_concurrency, options.timeout) == ("parallel", 3, 2.5)
    assert isinstance(reg.store, MemoryStore)  # the caller chooses the store
    assert reg.store.history_limit == 1000


def test_runs_table_aligns_the_error_column() -> None:
    from taskpack.builder.runs import format_table

    fast = record("a", 1, "error")._replace(duration_ms=0.1)
    slow = record("a", 2, "error")._replace(duration_ms=826.9)
    lines = format_table([fast, slow._replace(host="web-1.example:4121"),
                          record("a", 3)]).splitlines()
    column = lines[0].index("ERROR")
    assert [line.find("RuntimeError") for line in lines[1:3]] == [column, column]
    assert lines[3] == lines[3].rstrip() and "RuntimeError" not in lines[3]
    host = lines[0].index("HOST")  # the process that ran each run (many hosts)
    assert [line[host:].split()[0] for line in lines[1:]] == ["-", "web-1.example:4121", "-"]


def test_an_unreadable_store_does_not_break_the_task_list(
        make_project: MakeProject, caplog: pytest.LogCaptureFixture) -> None:
    """Like a failed write, a store that cannot be read never fails the
    listing: its last runs are unknown (null) and the error is logged."""
    root = make_project({
        ".taskpack/store.sqlite": "not a database\n" * 100,
        "tasks/ok.py": OK,
    })
    code, out, err = invoke("task", "list", "--json", "--root", str(root))
    assert code == 0, err
    assert json.loads(out)["tasks"] == {"ok": {"description": "", "lastRun": None}}
    assert "is not a database" in caplog.text


# -- history files of taskpack 0.1 -----------------------------------------------


LEGACY_RUNS = [("broken", "error", "ValueError: it broke", "schedule:*/5 * * * *"),
               ("hello", "ok", None, "http"), ("hello", "ok", None, "http")]


def test_a_01_history_file_is_read_without_being_written(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    shutil.copy(LEGACY, path)
    before = digest(path)
    code, out, err = invoke("runs", "--json", "--db", str(path))
    assert code == 0, err
    assert [(r["task"], r["outcome"], r["error"], r["trigger"]) for r in json.loads(out)] == \
        LEGACY_RUNS
    assert digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.sqlite"]


def test_a_01_history_next_to_a_new_store_is_imported(make_project: MakeProject) -> None:
    """The default store moved from .taskpack/history.sqlite to
    .taskpack/store.sqlite: the new store takes the old file's runs once."""
    root = make_project({"tasks/ok.py": OK})
    (root / ".taskpack").mkdir()
    shutil.copy(LEGACY, root / ".taskpack" / "history.sqlite")
    assert invoke("task", "run", "ok", "--root", str(root))[0] == 0
    assert invoke("task", "run", "ok", "--root", str(root))[0] == 0  # imported once only
    code, out, _ = invoke("runs", "--json", "--root", str(root))
    assert code == 0
    runs = [(r["task"], r["outcome"], r["error"], r["trigger"]) for r in json.loads(out)]
    assert runs == [("ok", "ok", None, "manual")] * 2 + LEGACY_RUNS


def test_a_01_history_file_as_the_store_is_upgraded_in_place(make_project: MakeProject) -> None:
    root = make_project({"taskpack.toml": '[server]\nhistory_path = "old.sqlite"\n',
                         "tasks/ok.py": OK})
    shutil.copy(LEGACY, root / "old.sqlite")
    assert invoke("task", "run", "ok", "--root", str(root))[0] == 0
    code, out, _ = invoke("runs", "--json", "--root", str(root))
    runs = [(r["task"], r["outcome"], r["error"], r["trigger"]) for r in json.loads(out)]
    assert code == 0 and runs == [("ok", "ok", None, "manual"), *LEGACY_RUNS]
    code, out, _ = invoke("db", "status", "--json", "--root", str(root))
    assert code == 0
    assert json.loads(out)["current"] == json.loads(out)["latest"] == 1


# -- issue 11, item 14: reading a history never writes it -------------------------


def test_runs_db_refuses_an_unrelated_sqlite_file_and_leaves_it_alone(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO users (name) VALUES ('ada')")
    conn.close()
    before = digest(path)
    code, out, err = invoke("runs", "--db", str(path))
    assert (code, out) == (2, "")
    assert err == f"error: --db: {path} is not a taskpack store (no taskpack tables)\n"
    assert digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.db"]  # no -wal, no -shm
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
        assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master")] == ["users"]
    conn.close()


def test_runs_db_reads_a_store_without_writing_it(make_project: MakeProject) -> None:
    root = make_project({"tasks/ok.py": OK})
    assert invoke("task", "run", "ok", "--root", str(root))[0] == 0
    path = root / ".taskpack" / "store.sqlite"
    before = digest(path)
    code, out, _ = invoke("runs", "--json", "--db", str(path))
    assert code == 0 and [r["task"] for r in json.loads(out)] == ["ok"]
    assert digest(path) == before


# -- issue 11, item 1: a history that cannot be written never hangs anything ----------

SURROGATE = """
import os
from taskpack import define_task

@define_task
def run(event):
    raise ValueError("unexpected file: " + os.fsdecode(b"caf\\xff.txt"))
"""


def cli(root: Path, *args: str, env: dict[str, str] | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``taskpack ARGS --root ROOT`` in a child process (it must end: the old
    history writer hung it forever)."""
    return subprocess.run([TASKPACK, *args, "--root", str(root)], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def test_an_error_message_with_a_lone_surrogate_is_stored_with_a_replacement(
        make_project: MakeProject) -> None:
    root = make_project({"tasks/listdir.py": SURROGATE})
    done = cli(root, "task", "run", "listdir")
    assert done.returncode == 1, done.stderr
    assert "unexpected file: caf" in done.stderr
    runs = json.loads(cli(root, "runs", "--json").stdout)
    assert [(r["task"], r["error"]) for r in runs] == [
        ("listdir", "ValueError: unexpected file: caf\ufffd.txt")]
    assert "caf\ufffd.txt" in runs[0]["traceback"]


def test_a_store_path_under_a_regular_file_loses_runs_but_never_blocks(
        make_project: MakeProject) -> None:
    root = make_project({"taskpack.toml": '[server]\nhistory_path = "blocker/h.sqlite"\n',
                         "tasks/ok.py": OK, "blocker": "a file, not a folder\n"})
    started = time.monotonic()
    done = cli(root, "task", "run", "ok")
    assert (done.returncode, done.stdout) == (0, "1\n"), done.stderr
    assert "blocker is not a folder" in done.stderr
    assert time.monotonic() - started < 30
    listing = cli(root, "task", "list", "--json")
    assert listing.returncode == 0
    assert json.loads(listing.stdout)["tasks"]["ok"]["lastRun"] is None


def test_a_read_only_file_system_loses_runs_but_never_blocks(make_project: MakeProject) -> None:
    """EROFS for real: the project folder bind-mounted read-only in a
    private mount namespace (``unshare``)."""
    root = make_project({"tasks/ok.py": OK, "tasks/listdir.py": SURROGATE})
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"unshare is not allowed here: {probe.stderr.decode().strip()}")
    script = (f"mount -o bind,ro {root} {root} && {TASKPACK} task run ok --root {root}; "
              f"echo exit=$?; {TASKPACK} task run listdir --root {root}; echo exit=$?")
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True,
                          text=True, timeout=60)
    assert done.stdout.splitlines() == ["1", "exit=0", "exit=1"], done.stderr
    assert "Read-only file system" in done.stderr
    assert not (root / ".taskpack").exists()


def test_health_reports_a_store_that_cannot_be_written(tmp_path: Path) -> None:
    from taskpack.server import BundleApp
    from tests.asgi_driver import call

    (tmp_path / "blocker").write_text("a file\n")

    def boom(event: object) -> None:
        raise ValueError("unexpected file: caf\udcff")

    registry = Registry.of({"ok": define_task(lambda e: 1), "boom": define_task(boom)},
                           root=tmp_path, store="sqlite:///blocker/store.sqlite")
    bundle = BundleApp(registry, token=None)

    async def main() -> dict[str, object]:
        await bundle.startup()
        await registry.run("ok")
        with pytest.raises(ValueError):
            await registry.run("boom")
        await registry.store.flush(10)
        status, _, body = await call(bundle.app, "GET", "/_health")
        assert status == 200
        await asyncio.wait_for(bundle.shutdown(), 15)
        return body  # type: ignore[no-any-return]

    body = asyncio.run(main())
    store = body["store"]
    assert isinstance(store, dict)
    assert (store["ok"], store["backend"], store["lost_runs"]) == (False, "sqlite", 2)
    assert "blocker is not a folder" in str(store["error"])


DEV_PROJECT = {
    "taskpack.toml": '[server]\nhistory_path = "blocker/h.sqlite"\nshutdown_grace = 2\n',
    "blocker": "a file, not a folder\n",
    "tasks/listdir.py": SURROGATE,
    "tasks/ok.py": OK,
}


@pytest.mark.parametrize("broken", ["under-a-file", "surrogates"])
def test_dev_server_answers_and_stops_whatever_the_history_does(
        make_project: MakeProject, broken: str) -> None:
    """The dev server runs tasks, lists them, serves /runs and stops on
    SIGTERM within its grace, whether the store cannot be written (a path
    under a regular file) or a task's error holds a lone surrogate."""
    files = dict(DEV_PROJECT)
    if broken == "surrogates":
        files["taskpack.toml"] = "[server]\nshutdown_grace = 2\n"
    root = make_project(files)
    port = free_port()
    proc = subprocess.Popen([TASKPACK, "dev", "--root", str(root), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}/_nitro/tasks"
    try:
        wait_for(lambda: _answers(base), what="the dev server", timeout=30)
        with httpx.Client(timeout=10) as client:
            assert client.post(f"{base}/ok").json() == 1
            assert client.post(f"{base}/listdir").status_code == 500
            for _ in range(3):  # the old history writer hung here (and then every request)
                runs = client.get(f"{base}/listdir/runs")
                assert runs.status_code == (503 if broken == "under-a-file" else 200)
                listing = client.get(base)
                assert listing.status_code == 200
                if broken == "under-a-file":
                    assert "is not a folder" in runs.json()["message"]
                    assert listing.json()["tasks"]["ok"]["lastRun"] is None
            assert client.post(f"{base}/ok").json() == 1
            if broken == "surrogates":
                runs = client.get(f"{base}/listdir/runs").json()["runs"]
                assert runs[0]["error"] == "ValueError: unexpected file: caf\ufffd.txt"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError("taskpack dev did not stop within 20 s of SIGTERM") from None
    assert code == 0


def _answers(base: str) -> bool | None:
    try:
        return httpx.get(base, timeout=2).status_code == 200 or None
    except httpx.HTTPError:
        return None


@pytest.mark.parametrize(("store", "driver"), [
    ("", False),
    ('[store]\ndriver = "postgres"\n', True),
    ('[store]\nurl = "postgresql:///app?host=/run/postgresql"\n', True),
    ('[store]\nurl = "sqlite:///runs.sqlite"\n', False),
])
def test_a_bundle_that_may_use_postgres_carries_its_driver(make_project: MakeProject,
                                                           store: str, driver: bool) -> None:
    root = make_project({"tasks/ok.py": OK, "taskpack.toml": store})
    code, _, err = invoke("build", "--preset", "server", "--root", str(root))
    assert code == 0, err
    lines = (root / ".output" / "server" / "requirements.txt").read_text().splitlines()
    assert ("psycopg[binary]>=3.2" in lines and "psycopg-pool>=3.2" in lines) is driver
