"""A real PostgreSQL for the tests: one fresh database per test.

The server is ``$TASKPACK_TEST_DATABASE_URL`` when set, else the machine's
own on 127.0.0.1:5432 when it answers, else a throwaway server this module
starts once per test session (Debian's ``initdb``/``pg_ctl`` from
``/usr/lib/postgresql/*/bin``, installed by ``scripts/ensure_postgres.sh``
which ``make test`` runs), in a temporary folder on a free port, stopped
when the session ends. Each :func:`fresh_database` is created empty and
dropped afterwards, so tests never see each other's rows. A Postgres test
is never skipped: without a server it fails.

Tests that restart or kill PostgreSQL mid-run use :func:`throwaway_server`,
a server of their own (never the machine's shared one).
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def server_url() -> str:
    """The admin URL of the test server (its maintenance database)."""
    url = os.environ.get("TASKPACK_TEST_DATABASE_URL")
    if url:
        return url
    if _answers("127.0.0.1", 5432):
        return DEFAULT_SERVER
    return _session_server().url


def unix_socket(url: str) -> tuple[str, int] | None:
    """(socket folder, port) of the test server at ``url`` when this module
    knows it: the machine's (Debian's /var/run/postgresql) or a throwaway."""
    port = urlsplit(url).port
    if _session is not None and port == _session.port:
        return str(_session.folder), port
    if port == 5432 and Path("/var/run/postgresql/.s.PGSQL.5432").exists():
        return "/var/run/postgresql", 5432
    return None


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


@contextmanager
def fresh_database(admin: str | None = None) -> Iterator[str]:
    """Create an empty database (on ``admin``'s server, default
    :func:`server_url`), yield its URL, drop it (forcibly) after."""
    import psycopg

    admin = admin or server_url()
    name = "tp_" + uuid.uuid4().hex[:12]
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(admin, name)
    finally:
        with contextlib.suppress(Exception), psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- throwaway servers -------------------------------------------------------------


def pg_bin() -> Path:
    """The folder of Debian's PostgreSQL binaries (the newest version)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if not found:
        raise RuntimeError("no PostgreSQL binaries in /usr/lib/postgresql/*/bin: run "
                           "scripts/ensure_postgres.sh (apt-get install postgresql)")
    return Path(found[-1]).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _answers(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=0.5).close()
    except OSError:
        return False
    return True


class PgServer:
    """A PostgreSQL server of the tests' own, in ``folder`` on ``port``
    (trust auth, user ``postgres``, no fsync). :attr:`url` is its
    ``postgres`` database. :meth:`stop`/:meth:`start`/:meth:`restart` go
    through ``pg_ctl`` (fast shutdown: sessions are cut); :meth:`kill` is
    SIGKILL to the postmaster and its children (a crash; the next
    :meth:`start` recovers)."""

    def __init__(self, folder: Path, port: int, *, password: str | None = None) -> None:
        self.folder = folder
        self.port = port
        self.data = folder / "data"
        self.log = folder / "server.log"
        self.listen = "127.0.0.1"
        """``listen_addresses`` from the next :meth:`start` (the many-hosts
        test adds addresses of its own veth pairs)."""
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        self._bin = pg_bin()
        self._user = None if os.geteuid() != 0 else "postgres"
        if self._user is not None:
            record = pwd.getpwnam(self._user)
            os.chown(folder, record.pw_uid, record.pw_gid)
        auth = ["--auth=trust"]
        if password is not None:  # TCP logins need it; the socket stays trusted
            pwfile = folder / "pwfile"
            pwfile.write_text(password + "\n")
            if self._user is not None:
                os.chown(pwfile, record.pw_uid, record.pw_gid)
            auth = ["--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}"]
            self.url = f"postgresql://postgres:{password}@127.0.0.1:{port}/postgres"
        self._run("initdb", "-D", str(self.data), "-U", "postgres", *auth,
                  "-E", "UTF8", "--no-sync", "--no-instructions")

    def _run(self, program: str, *args: str, check: bool = True) -> None:
        command = [str(self._bin / program), *args]
        if self._user is not None:  # initdb and postgres refuse to run as root
            command = ["runuser", "-u", self._user, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if check and result.returncode != 0:
            tail = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{program} failed ({result.returncode}): {result.stderr}\n{tail}")

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.folder} -c listen_addresses={self.listen} "
                   "-c fsync=off -c full_page_writes=off -c max_connections=200")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options,
                  "-w", "-t", "60", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop",
                  check=False)

    def restart(self) -> None:
        self.stop()
        self.start()

    def kill(self) -> None:
        pid_file = self.data / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return
        victims = [pid, *_children(pid)]
        for victim in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(_alive(v) for v in victims):
            time.sleep(0.05)
        # A killed postmaster leaves its pid file; where nobody reaps it (pid 1
        # of a container), its zombie would look alive to the next start.
        pid_file.unlink(missing_ok=True)
        (self.folder / f".s.PGSQL.{self.port}.lock").unlink(missing_ok=True)
        (self.folder / f".s.PGSQL.{self.port}").unlink(missing_ok=True)

    def remove(self) -> None:
        self.stop()
        self.kill()
        shutil.rmtree(self.folder, ignore_errors=True)


def _children(pid: int) -> list[int]:
    found = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = Path(stat).read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(Path(stat).parts[2]))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@contextmanager
def throwaway_server(*, password: str | None = None) -> Iterator[PgServer]:
    """A PostgreSQL server started for the caller alone (temp folder, free
    port), removed afterwards: for tests that restart or kill it. With
    ``password``, TCP logins need it (user ``postgres``; :attr:`url` has it)."""
    folder = Path(tempfile.mkdtemp(prefix="taskpack-pg-"))
    server = PgServer(folder, free_port(), password=password)
    try:
        server.start()
        yield server
    finally:
        server.remove()


_session: PgServer | None = None


def _session_server() -> PgServer:
    """The session's fallback server, started on first use, removed at exit."""
    global _session
    if _session is None:
        folder = Path(tempfile.mkdtemp(prefix="taskpack-pg-session-"))
        server = PgServer(folder, free_port())
        server.start()
        atexit.register(server.remove)
        _session = server
    return _session
