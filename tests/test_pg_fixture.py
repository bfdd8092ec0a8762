"""The tests' own PostgreSQL servers (tests/pg.py): a throwaway server can be
stopped, started, restarted and killed, and the session fallback works
when no other server answers."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg
import pytest

from tests.helpers import REPO
from tests.pg import fresh_database, throwaway_server


def test_throwaway_server_restarts_and_survives_a_kill() -> None:
    with throwaway_server() as server, fresh_database(server.url) as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE t (x int)")
            conn.execute("INSERT INTO t VALUES (1)")
        server.restart()
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT x FROM t").fetchone() == (1,)
        server.kill()
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(url, connect_timeout=2)
        server.start()
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT count(*) FROM t").fetchone() == (1,)
        server.stop()
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(url, connect_timeout=2)
        server.start()


def test_session_fallback_when_nothing_answers() -> None:
    """With no URL and nothing on 127.0.0.1:5432 the tests start a server of
    their own. Checked in a child process that points the 'machine server'
    at a port where nothing listens."""
    code = (
        "import tests.pg as pg, psycopg\n"
        "pg._answers = lambda host, port: False\n"
        "url = pg.server_url()\n"
        "assert url != pg.DEFAULT_SERVER, url\n"
        "with pg.fresh_database() as db, psycopg.connect(db) as conn:\n"
        "    print(conn.execute('select 1').fetchone()[0])\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TASKPACK_TEST_DATABASE_URL"}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"
