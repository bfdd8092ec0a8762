#!/bin/sh
# PostgreSQL binaries for the tests' throwaway servers (tests/pg.py): Debian's
# `postgresql` package when no /usr/lib/postgresql/*/bin/initdb exists yet.
# The tests use $TASKPACK_TEST_DATABASE_URL or a server on 127.0.0.1:5432 when
# there is one; the binaries are the fallback (and for tests that restart
# PostgreSQL, which never touch the machine's own server).
set -e
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure_postgres: no PostgreSQL binaries and no apt-get; install PostgreSQL" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends postgresql
