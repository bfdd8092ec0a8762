"""The run history stores, concurrent SQLite writers, and ``taskpack runs``."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from taskpack import (
    MemoryHistory,
    NoHistory,
    Registry,
    RunRecord,
    define_task,
    set_registry,
)
from taskpack.builder.cli import main
from taskpack.history import HistoryStore, open_history
from taskpack.history_sqlite import SQLiteHistory
from tests.helpers import REPO, MakeProject


@pytest.fixture(autouse=True)
def no_current_registry() -> Iterator[None]:
    yield
    set_registry(None)


def record(task: str, n: int, outcome: str = "ok") -> RunRecord:
    return RunRecord(f"{task}-{n}", task, "manual", "0" * 16, 1000.0 + n, 1000.5 + n, 500.0,
                     1, outcome, None if outcome == "ok" else f"RuntimeError: {n}")  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["memory", "sqlite", "sqlite-unthreaded"])
def test_store_contract(tmp_path: Path, kind: str) -> None:
    if kind == "sqlite-unthreaded":
        store: HistoryStore = SQLiteHistory(tmp_path / "h.sqlite", limit=5, threaded=False)
    else:
        store = open_history(kind, tmp_path, limit=5)  # type: ignore[arg-type]
    for n in range(8):
        store.record(record("a", n))
    store.record(record("b", 0, "error"))
    assert [r.id for r in store.runs("a")] == ["a-7", "a-6", "a-5", "a-4", "a-3"]
    assert [r.id for r in store.runs("a", limit=2)] == ["a-7", "a-6"]
    assert [r.id for r in store.runs(limit=3)] == ["b-0", "a-7", "a-6"]
    assert store.runs("nope") == []
    assert store.last_runs() == {"a": record("a", 7), "b": record("b", 0, "error")}
    store.close()


def test_no_history_records_nothing(tmp_path: Path) -> None:
    store = open_history("none", tmp_path)
    store.record(record("a", 1))
    assert (store.runs(), store.last_runs()) == ([], {})
    assert isinstance(store, NoHistory)
    with pytest.raises(ValueError, match="unknown history kind 'disk'"):
        open_history("disk", tmp_path)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="history limit must be an integer >= 1, got 0"):
        MemoryHistory(limit=0)


def test_sqlite_survives_reopening_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "history.sqlite"
    first = SQLiteHistory(path)
    first.record(record("a", 1))
    first.close()
    second = SQLiteHistory(path)
    assert second.runs() == [record("a", 1)]
    second.record(record("a", 2))
    assert [r.id for r in second.runs()] == ["a-2", "a-1"]
    second.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


@pytest.mark.parametrize("threaded", [True, False])
def test_sqlite_storage_errors_never_fail_the_run(tmp_path: Path, threaded: bool,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    store = SQLiteHistory(tmp_path, threaded=threaded)  # a folder: cannot be opened as a file
    store.record(record("a", 1))
    store.flush()
    assert "history: cannot record 1 run(s) (first: a-1 of task a)" in caplog.text
    store.close()


def test_unthreaded_sqlite_writes_at_once(tmp_path: Path) -> None:
    store = SQLiteHistory(tmp_path / "h.sqlite", threaded=False)
    store.record(record("a", 1))
    store.record(record("a", 1))  # a run is stored once, even if recorded twice
    assert store.runs() == [record("a", 1)]
    assert store._writer is None
    store.close()


def test_registry_records_every_outcome(tmp_path: Path) -> None:
    async def ok(event: object) -> str:
        await asyncio.sleep(0.02)
        return "fine"

    def bad(event: object) -> None:
        raise ValueError("nope")

    reg = Registry.of({"ok": define_task(ok), "bad": define_task(bad)}, root=tmp_path,
                      history="sqlite")
    asyncio.run(reg.run("ok", context={"trigger": "schedule:*/5 * * * *"}))
    with pytest.raises(ValueError):
        asyncio.run(reg.run("bad", {"x": 1}, context={"trigger": "http"}))
    reg.history.close()
    runs = SQLiteHistory(tmp_path / ".taskpack" / "history.sqlite").runs()
    assert [(r.task, r.trigger, r.outcome, r.attempts, r.error) for r in runs] == [
        ("bad", "http", "error", 1, "ValueError: nope"),
        ("ok", "schedule:*/5 * * * *", "ok", 1, None),
    ]
    assert runs[1].duration_ms >= 20


WRITER = """
import asyncio, sys
from pathlib import Path
from taskpack import Registry, define_task

async def body(event):
    await asyncio.sleep(0)
    return event.payload["n"]

async def main():
    reg = Registry.of({"work": define_task(body, concurrency="parallel")},
                      root=Path(sys.argv[1]), history="sqlite")
    results = await asyncio.gather(*(reg.run("work", {"n": n}) for n in range(100)))
    assert results == list(range(100))
    reg.history.close()

asyncio.run(main())
"""


def test_concurrent_writer_processes_lose_no_rows(tmp_path: Path) -> None:
    script = tmp_path / "writer.py"
    script.write_text(textwrap.dedent(WRITER))
    procs = [subprocess.Popen([sys.executable, str(script), str(tmp_path)], cwd=REPO)
             for _ in range(3)]
    assert [proc.wait(timeout=120) for proc in procs] == [0, 0, 0]
    with sqlite3.connect(tmp_path / ".taskpack" / "history.sqlite") as conn:
        assert conn.execute("SELECT COUNT(*), COUNT(DISTINCT id) FROM runs").fetchone() == (300,
                                                                                           300)
        assert conn.execute("SELECT outcome, COUNT(*) FROM runs GROUP BY outcome").fetchall() == [
            ("ok", 300)]


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


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


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
                              "DURATION", "ERROR"]
    assert row.split()[2:6] == ["flaky", "manual", "ok", "3"]
    code, out, _ = invoke("runs", "--limit", "1", "--root", str(root))
    assert len(out.splitlines()) == 2 and "broken" in out


def test_history_path_from_config_and_db_option(make_project: MakeProject) -> None:
    root = make_project({
        "taskpack.toml": '[server]\nhistory_path = "var/runs.db"\n',
        "tasks/ok.py": "from taskpack import define_task\n\n@define_task\ndef run(e):\n"
                       "    return 1\n",
    })
    assert invoke("runs", "--root", str(root))[1].startswith("No runs recorded (")
    assert invoke("task", "run", "ok", "--root", str(root))[0] == 0
    assert (root / "var" / "runs.db").is_file()
    code, out, _ = invoke("runs", "--json", "--db", str(root / "var" / "runs.db"))
    assert code == 0 and json.loads(out)[0]["task"] == "ok"
    code, _, err = invoke("runs", "--db", str(root / "missing.db"))
    assert code == 2 and "--db:" in err and "does not exist" in err
    (root / "notes.txt").write_text("not a database\n" * 100)
    code, out, err = invoke("runs", "--db", str(root / "notes.txt"))
    assert (code, out) == (2, "")
    assert err == (f"error: --db: cannot read {root / 'notes.txt'} as a run history: "
                   "file is not a database\n")


@pytest.mark.parametrize(("table", "message"), [
    ("retry = 3", "tasks.x.retry: unknown key (did you mean 'retries'?)"),
    ("retries = -1", "tasks.x.retries: must be at least 0, got -1"),
    ("timeout = 0", "tasks.x.timeout: must be more than 0, got 0"),
    ('timeout = "30s"', "tasks.x.timeout: expected a number, got a string"),
    ('concurrency = "queue"', "tasks.x.concurrency: expected one of 'dedupe', "
                              "'dedupe_payload', 'serial', 'parallel', got 'queue'"),
    ('concurrency = "serial"\nmax_concurrency = 3',
     "tasks.x.max_concurrency: only applies to concurrency = 'parallel', not 'serial'"),
    ("on_start = 1", "tasks.x.on_start: unknown key (known: handler, description, retries, "
                     "timeout, concurrency, max_concurrency)"),
])
def test_bad_task_options_in_config(make_project: MakeProject, table: str, message: str) -> None:
    root = make_project({"taskpack.toml": f'[tasks."x"]\n{table}\n', "tasks/x.py": BROKEN})
    code, _, err = invoke("task", "list", "--root", str(root))
    assert code == 2
    assert err == f"error: taskpack.toml: {message}\n"


def test_bad_history_settings(make_project: MakeProject) -> None:
    root = make_project({"taskpack.toml": "[server]\nhistory_limit = 0\n"})
    code, _, err = invoke("task", "list", "--root", str(root))
    assert (code, err) == (2, "error: taskpack.toml: server.history_limit: must be at least 1, "
                              "got 0\n")


def test_manifest_carries_options_and_history(make_project: MakeProject) -> None:
    from taskpack.builder.manifest import build_manifest
    from taskpack.builder.project import load_project

    root = make_project({
        "taskpack.toml": '[tasks."x"]\nmax_concurrency = 3\ntimeout = 2.5\n'
                         '[server]\nhistory_path = "/var/lib/app/runs.db"\n',
        "tasks/x.py": BROKEN,
    })
    manifest = build_manifest(load_project(root))
    assert manifest["tasks"]["x"]["options"] == {"max_concurrency": 3, "timeout": 2.5}
    assert manifest["history"] == {"path": "/var/lib/app/runs.db", "limit": 1000}
    reg = Registry.from_manifest(manifest, root)
    options = reg.runner("x").options
    assert (options.concurrency, options.max_concurrency, options.timeout) == ("parallel", 3, 2.5)
    assert isinstance(reg.history, MemoryHistory)
    assert reg.history.limit == 1000


def _record_in_child(store: SQLiteHistory) -> None:
    store.record(record("child", 1))
    store.close()


def test_sqlite_store_is_usable_after_fork(tmp_path: Path) -> None:
    import multiprocessing

    store = SQLiteHistory(tmp_path / "h.sqlite")
    store.record(record("parent", 1))
    store.flush()  # the parent's writer thread and connection exist before the fork
    child = multiprocessing.get_context("fork").Process(target=_record_in_child, args=(store,))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    store.record(record("parent", 2))
    assert sorted(r.id for r in store.runs()) == ["child-1", "parent-1", "parent-2"]
    store.close()


def test_runs_table_aligns_the_error_column() -> None:
    from taskpack.builder.runs import format_table

    fast = record("a", 1, "error")._replace(duration_ms=0.1)
    slow = record("a", 2, "error")._replace(duration_ms=826.9)
    lines = format_table([fast, slow, record("a", 3)]).splitlines()
    column = lines[0].index("ERROR")
    assert [line.find("RuntimeError") for line in lines[1:3]] == [column, column]
    assert lines[3] == lines[3].rstrip() and "RuntimeError" not in lines[3]


def test_an_unreadable_history_does_not_break_the_task_list(
        make_project: MakeProject, caplog: pytest.LogCaptureFixture) -> None:
    """Like a failed write, a history that cannot be read never fails the
    listing: its last runs are unknown (null) and the error is logged."""
    root = make_project({
        ".taskpack/history.sqlite": "not a database\n" * 100,
        "tasks/ok.py": "from taskpack import define_task\n\n@define_task\ndef run(e):\n"
                       "    return 1\n",
    })
    code, out, err = invoke("task", "list", "--json", "--root", str(root))
    assert code == 0, err
    assert json.loads(out)["tasks"] == {"ok": {"description": "", "lastRun": None}}
    assert "history: cannot read the last runs: file is not a database" in caplog.text
