"""A real PostgreSQL for the tests: one fresh database per test.

The server is ``$TASKPACK_TEST_DATABASE_URL`` when set, else the machine's
own on 127.0.0.1:5432. Each :func:`fresh_database` is created empty and
dropped afterwards, so tests never see each other's rows. (The store issue
adds the fallback: a throwaway server started with ``initdb``/``pg_ctl``
when neither answers. In CI a Postgres test is never skipped.)
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def server_url() -> str:
    """The admin URL of the test server (its maintenance database)."""
    return os.environ.get("TASKPACK_TEST_DATABASE_URL") or DEFAULT_SERVER


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


@contextmanager
def fresh_database() -> Iterator[str]:
    """Create an empty database, yield its URL, drop it (forcibly) after."""
    import psycopg

    admin = server_url()
    name = "tp_" + uuid.uuid4().hex[:12]
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(admin, name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
