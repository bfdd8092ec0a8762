"""The PostgreSQL store beyond the shared contract: URLs (a Unix socket,
bad ones: one line naming the host, never the password, exit 2 at start),
``taskpack db``, a server that restarts or crashes under a running store,
and paging that stays on its index at 100,000 runs (SQLite too)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest

from taskpack.store import NewJob, RunRecord, Store, StoreError, store_for
from tests.helpers import MakeProject
from tests.pg import fresh_database, throwaway_server, unix_socket

TASKPACK = str(Path(sys.executable).parent / "taskpack")
OK = "from taskpack import define_task\n\n@define_task\ndef run(e):\n    return 1\n"


def taskpack(*args: str, url: str | None, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TASKPACK_DATABASE_URL"}
    if url is not None:
        env["TASKPACK_DATABASE_URL"] = url
    return subprocess.run([TASKPACK, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=60)


def run(n: int, task: str = "t") -> RunRecord:
    return RunRecord(f"{task}-{n}", task, "manual", "0" * 16, float(n), float(n) + 0.5, 500.0,
                     1, "ok", None, "h:1", {"n": n}, n)


# -- URLs --------------------------------------------------------------------------------


def test_a_unix_socket_url_works(pg_url: str) -> None:
    """``postgresql:///db?host=/socket/folder``: the machine's server or the
    tests' own listens on a socket as well as on TCP."""
    with contextlib.ExitStack() as stack:
        socket = unix_socket(pg_url)
        if socket is None:  # a server given by URL: use one whose socket is known
            server = stack.enter_context(throwaway_server())
            pg_url = stack.enter_context(fresh_database(server.url))
            socket = (str(server.folder), server.port)
        check_socket_url(pg_url, *socket)


def check_socket_url(pg_url: str, folder: str, port: int) -> None:
    parts = urlsplit(pg_url)
    url = f"postgresql://{parts.username}@{parts.path}?host={folder}&port={port}"

    async def main() -> str:
        store = store_for(url, root=Path.cwd())
        await store.open()
        try:
            job = await store.enqueue(NewJob("t", {"via": "socket"}, time.time()))
            return (await store.claim("w", 1))[0].id == job.id and job.payload["via"]
        finally:
            await store.close()

    assert asyncio.run(main()) == "socket"


@pytest.mark.parametrize(("url", "line"), [
    ("postgresql://app:hunter2@127.0.0.1:1/app",
     'error: store 127.0.0.1:1/app: cannot connect: connection to server at "127.0.0.1", '
     "port 1 failed: Connection refused"),
    ("postgresql://app:hunter2@nonexistent.invalid/app",
     "error: store nonexistent.invalid:5432/app: cannot connect: failed to resolve host "
     "'nonexistent.invalid'"),
    ("postgresql://app:hunter2@127.0.0.1:notaport/app",
     "error: store postgresql://app:***@127.0.0.1:notaport/app: cannot connect: "),
    ("mysql://app:hunter2@db/app",
     "error: TASKPACK_DATABASE_URL: store URL 'mysql://app:***@db/app': unknown scheme "
     "mysql://"),
])
def test_a_bad_url_is_one_line_naming_the_host(make_project: MakeProject, url: str,
                                                line: str) -> None:
    root = make_project({"tasks/ok.py": OK})
    commands = [("task", "run", "ok")]
    if url.endswith(":1/app"):  # every command that opens the store, once
        commands += [("db", "status"), ("db", "migrate"), ("runs",), ("dev", "--port", "0")]
    for args in commands:
        done = taskpack(*args, url=url, cwd=root)
        assert done.returncode == 2, (args, done.stderr)
        assert done.stdout == ""
        assert done.stderr.count("\n") == 1 and done.stderr.startswith(line), (args, done.stderr)
        assert "hunter2" not in done.stderr


def test_refused_logins_and_a_built_server_start(make_project: MakeProject,
                                                 tmp_path: Path) -> None:
    """A server that refuses the login: one line at the start of the CLI and
    of a built server, exit 2; the right password works."""
    root = make_project({"tasks/ok.py": OK, "taskpack.toml": "[server]\ntasks_api = false\n"})
    assert taskpack("build", "--preset", "server", "--root", str(root), url=None,
                    cwd=root).returncode == 0
    with throwaway_server(password="s3cret") as server:
        bad = server.url.replace("s3cret", "wrong-one")
        done = taskpack("task", "run", "ok", url=bad, cwd=root)
        assert done.returncode == 2
        assert done.stderr == (f"error: store 127.0.0.1:{server.port}/postgres: cannot connect: "
                               f'connection to server at "127.0.0.1", port {server.port} '
                               'failed: FATAL: password authentication failed for user '
                               '"postgres"\n')
        started = subprocess.run(
            [sys.executable, str(root / ".output" / "server" / "index.py")], cwd=tmp_path,
            env={**os.environ, "TASKPACK_DATABASE_URL": bad, "PORT": "0"},
            capture_output=True, text=True, timeout=60)
        assert started.returncode == 2
        assert started.stderr.strip().splitlines()[-1].startswith(
            f"error: store 127.0.0.1:{server.port}/postgres: cannot connect: ")
        assert "wrong-one" not in started.stderr
        done = taskpack("task", "run", "ok", url=server.url, cwd=root)
        assert (done.returncode, done.stdout) == (0, "1\n"), done.stderr


# -- taskpack db ------------------------------------------------------------------------


def test_db_status_and_migrate(make_project: MakeProject, pg_url: str) -> None:
    root = make_project({"tasks/ok.py": OK})
    for url, name in ((pg_url, urlsplit(pg_url).path.lstrip("/")), (None, "store.sqlite")):
        status = taskpack("db", "status", url=url, cwd=root)
        assert status.returncode == 0, status.stderr
        assert "schema:  version 0 of 1\npending: 1\n" in status.stdout and name in status.stdout
        migrated = taskpack("db", "migrate", "--json", url=url, cwd=root)
        assert migrated.returncode == 0, migrated.stderr
        assert '"applied": [\n    1\n  ]' in migrated.stdout
        again = taskpack("db", "migrate", url=url, cwd=root)
        assert again.stdout.endswith(": schema is up to date (version 1)\n")
        assert '"pending": []' in taskpack("db", "status", "--json", url=url, cwd=root).stdout
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("INSERT INTO taskpack_schema_version VALUES (7, 0)")
    for args in (("db", "status"), ("task", "run", "ok")):
        done = taskpack(*args, url=pg_url, cwd=root)
        assert done.returncode == 2
        assert "has schema version 7, newer than this taskpack knows (1)" in done.stderr


# -- a server that goes away ----------------------------------------------------------------


def test_the_store_survives_a_restart_and_a_crash_of_postgres(
        caplog: pytest.LogCaptureFixture) -> None:
    """Runs recorded while PostgreSQL restarts or after it crashed are kept
    (the writer retries), a server's web part keeps answering (its
    /_health says the store is down, then up), a job enqueued before is
    claimed after, and nothing is stored twice. The outage is logged by the
    store once per state change, not by the pool on every reconnect try."""
    from taskpack import Registry, define_task
    from taskpack.server import BundleApp
    from tests.asgi_driver import call

    with throwaway_server() as server, fresh_database(server.url) as url:
        async def main() -> dict[str, Any]:
            store = store_for(url, root=Path.cwd())
            bundle = BundleApp(Registry.of({"echo": define_task(lambda e: e.payload)},
                                           store=store), token=None, role="web")
            await bundle.startup()
            try:
                for n in range(50):
                    store.record_run(run(n))
                assert await store.flush(10)
                job = await store.enqueue(NewJob("t", {}, time.time()))
                await asyncio.to_thread(server.stop)
                status, _, body = await call(bundle.app, "GET", "/_health")
                assert status == 200 and body["store"]["ok"] is False, body
                assert "127.0.0.1" in body["store"]["error"]
                assert await bundle.registry.run("echo", {"up": False}) == {"up": False}
                for n in range(50, 100):
                    store.record_run(run(n))
                await asyncio.sleep(0.3)
                await asyncio.to_thread(server.start)
                assert await store.flush(30)
                await asyncio.to_thread(server.kill)
                for n in range(100, 150):
                    store.record_run(run(n))
                await asyncio.sleep(0.3)
                await asyncio.to_thread(server.start)
                assert await store.flush(30)
                claimed = await store.claim("w", 5)
                assert [j.id for j in claimed] == [job.id]
                page = await store.list_runs(limit=1000, task="t")
                _, _, body = await call(bundle.app, "GET", "/_health")
                return {"ids": [r.id for r in page.runs], "health": body["store"],
                        "echo": [r.payload for r in (await store.list_runs(task="echo")).runs]}
            finally:
                await bundle.shutdown()

        found = asyncio.run(main())
    assert sorted(found["ids"]) == sorted(f"t-{n}" for n in range(150))
    assert found["health"] == {"ok": True, "backend": "postgres", "error": None, "lost_runs": 0}
    assert found["echo"] == [{"up": False}]  # the run made while it was down, kept
    assert [r.getMessage() for r in caplog.records
            if r.name.startswith("psycopg") and r.levelno > logging.DEBUG] == []


# -- paging at 100,000 runs -------------------------------------------------------------------


def fill(url: str, tmp_path: Path, count: int) -> Store:
    """A store with ``count`` runs of ten tasks, written in bulk (this test
    is about reading them)."""
    store = store_for(url, root=tmp_path, history_limit=count)
    asyncio.run(store.open())
    asyncio.run(store.close())
    rows = [(f"r{n}", f"t{n % 10}", "manual", "0" * 16, float(n), n + 0.5, 500.0, 1, "ok",
             "h:1") for n in range(count)]
    insert = ("INSERT INTO {} (id, task, trigger, payload_hash, started_at, finished_at, "
              "duration_ms, attempts, outcome, host) VALUES ({})")
    if url.startswith("sqlite"):
        with sqlite3.connect(url[len("sqlite:///"):]) as conn:
            conn.executemany(insert.format("runs", ", ".join("?" * 10)), rows)
        conn.close()
    else:
        with psycopg.connect(url) as pg, pg.cursor() as cur:
            cur.executemany(insert.format("taskpack_runs", ", ".join(["%s"] * 10)), rows)
            cur.execute("ANALYZE taskpack_runs")
    return store


def test_paging_stays_on_an_index_at_100000_runs(tmp_path: Path, pg_url: str) -> None:
    count = 100_000
    for url in (f"sqlite:///{tmp_path / 'big.sqlite'}", pg_url):
        store = fill(url, tmp_path, count)

        async def pages(store: Store = store) -> tuple[float, int]:
            await store.open()
            try:
                started = time.perf_counter()
                cursor, seen = None, 0
                for _ in range(50):  # 50 pages deep into one task's runs
                    page = await store.list_runs(task="t3", limit=100, cursor=cursor)
                    seen += len(page.runs)
                    cursor = page.next_cursor
                return time.perf_counter() - started, seen
            finally:
                await store.close()

        took, seen = asyncio.run(pages())
        assert seen == 5000
        assert took < 10, f"{url}: 50 pages took {took:.1f}s"
    with sqlite3.connect(tmp_path / "big.sqlite") as conn:
        plan = " ".join(row[-1] for row in conn.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM runs WHERE task = ? AND seq < ? "
            "ORDER BY seq DESC LIMIT 100", ("t3", 5000)))
    conn.close()
    assert "USING INDEX runs_task_seq" in plan and "TEMP B-TREE" not in plan, plan
    with psycopg.connect(pg_url) as pg:
        for query in ("SELECT * FROM taskpack_runs WHERE task = 't3' AND seq < 5000 "
                      "ORDER BY seq DESC LIMIT 100",
                      "SELECT * FROM taskpack_runs WHERE seq < 5000 ORDER BY seq DESC LIMIT 100"):
            plan = " ".join(row[0] for row in pg.execute("EXPLAIN " + query))
            assert "Index Scan" in plan and "Sort" not in plan and "Seq Scan" not in plan, plan


def test_store_errors_never_show_the_password() -> None:
    async def main() -> str:
        store = store_for("postgresql://app:hunter2@127.0.0.1:1/app", root=Path.cwd())
        try:
            await store.open()
        except StoreError as exc:
            return str(exc) + repr(store) + str(await store.health())
        raise AssertionError("opened a store on a closed port")

    text = asyncio.run(main())
    assert "hunter2" not in text and "127.0.0.1:1/app" in text


def test_a_worker_on_another_connection_wakes_on_notify(pg_url: str) -> None:
    """LISTEN/NOTIFY: a store waiting for jobs wakes within moments of an
    enqueue, a retry or the end of a named queue's job made through
    another store (another host), long before its wait would time out."""
    async def main() -> list[float]:
        here, there = store_for(pg_url, root=Path.cwd()), store_for(pg_url, root=Path.cwd())
        await here.open()
        await there.open()
        try:
            await here.wait_for_jobs(0.01)  # starts listening
            await asyncio.sleep(0.5)
            queued = await there.enqueue(NewJob("t", {}, time.time(), queue="q"))
            await there.enqueue(NewJob("t", {}, time.time(), queue="q"))
            await there.claim("w", 1)
            took = []
            for change in (lambda: there.enqueue(NewJob("t", {}, time.time())),
                           lambda: there.finish(queued.id, "w", ok=True)):
                await asyncio.sleep(0.2)
                started = time.monotonic()
                waiting = asyncio.create_task(here.wait_for_jobs(30))
                await asyncio.sleep(0.1)
                await change()
                await waiting
                took.append(time.monotonic() - started)
            return took
        finally:
            await here.close()
            await there.close()

    took = asyncio.run(main())
    assert all(t < 5 for t in took), took


def test_old_fire_claims_are_pruned(tmp_path: Path, pg_url: str) -> None:
    """A schedule keeps a week of claims (and always its newest): the table
    does not grow with every fire forever."""
    from taskpack.store import FireClaim

    day = 24 * 3600 * 1000

    async def claims(url: str) -> int | None:
        store = store_for(url, root=tmp_path)
        await store.open()
        try:
            for fire in (0, day, 2 * day, 9 * day):
                assert await store.claim_fire(FireClaim("s", fire), "h")
            assert await store.claim_fire(FireClaim("other", 0), "h")
            return await store.last_fire("s")
        finally:
            await store.close()

    sqlite_url = f"sqlite:///{tmp_path / 'claims.sqlite'}"
    for url in (sqlite_url, pg_url):
        assert asyncio.run(claims(url)) == 9 * day
    with sqlite3.connect(tmp_path / "claims.sqlite") as conn:
        left = conn.execute("SELECT schedule, fire_ms FROM fire_claims ORDER BY 1, 2").fetchall()
    conn.close()
    assert left == [("other", 0), ("s", 2 * day), ("s", 9 * day)]
    with psycopg.connect(pg_url) as pg:
        assert pg.execute("SELECT schedule, fire_ms FROM taskpack_fire_claims "
                          "ORDER BY 1, 2").fetchall() == left
