"""``.taskpack/dev.json``: how a running ``taskpack dev`` is found, and
``.taskpack/dev.lock``: which one owns the project.

A dev server first takes an exclusive ``flock`` on ``dev.lock`` (and keeps
it while it runs; the kernel drops it when the process dies, even by
``kill -9``), so a second ``taskpack dev`` on the same project finds it
taken and refuses to start, naming the first (:class:`AlreadyRunning`).
The owner writes ``dev.json`` once it is listening and removes it on exit;
the CLI reads it to send ``task list``/``task run`` to that server. A file
that no live dev server owns (the lock is free, or the process is gone) is
stale: it is removed and ignored, never an error. A server that owns the
lock but does not answer is left alone: only its owner removes the file.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

STATE_DIR = ".taskpack"
STATE_FILE = "dev.json"
LOCK_FILE = "dev.lock"
CLAIM_WAIT = 1.0
PROBE_TIMEOUT = 2.0

LOCAL_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
"""Opens URLs of the local dev server, never through an ``http_proxy``."""


@dataclass(frozen=True)
class DevState:
    """What ``dev.json`` holds: the server's process id, address and start
    time (ISO 8601, UTC)."""

    pid: int
    host: str
    port: int
    started: str

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def state_path(root: Path) -> Path:
    return root / STATE_DIR / STATE_FILE


def write_state(root: Path, host: str, port: int) -> DevState:
    """Record this process as the project's dev server (atomic replace)."""
    state = DevState(os.getpid(), host, port, datetime.now(UTC).isoformat(timespec="seconds"))
    path = state_path(root)
    path.parent.mkdir(exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".dev-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(asdict(state), fh, indent=2)
        fh.write("\n")
    os.replace(tmp, path)
    return state


def remove_state(root: Path, pid: int | None = None) -> None:
    """Remove ``dev.json`` (only if it names ``pid``, when given)."""
    path = state_path(root)
    if pid is not None:
        state = _read(path)
        if state is not None and state.pid != pid:
            return
    path.unlink(missing_ok=True)


class AlreadyRunning(Exception):
    """Another ``taskpack dev`` owns the project: ``pid`` (from the lock
    file) and ``state`` (its ``dev.json``, ``None`` while it starts)."""

    def __init__(self, pid: int | None, state: DevState | None) -> None:
        super().__init__(pid, state)
        self.pid = pid
        self.state = state

    def describe(self) -> str:
        """``pid 123 at http://127.0.0.1:3000`` (as much as is known)."""
        pid = self.state.pid if self.state is not None else self.pid
        where = f" at {self.state.base_url}" if self.state is not None else " (starting)"
        return f"pid {pid}{where}" if pid is not None else f"another process{where}"


def claim(root: Path) -> int:
    """Take ``dev.lock`` for this process (its pid written in it) and return
    the open descriptor, which holds the claim until it is closed or the
    process ends. :class:`AlreadyRunning` when another process holds it (a
    reader probing the lock is waited out for up to :data:`CLAIM_WAIT` s)."""
    path = root / STATE_DIR / LOCK_FILE
    path.parent.mkdir(exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + CLAIM_WAIT
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() < deadline and not _held_exclusively(fd):
                time.sleep(0.05)
                continue
            text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            os.close(fd)
            state = _read(state_path(root))
            raise AlreadyRunning(int(text) if text.isdigit() else None, state) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _held_exclusively(fd: int) -> bool:
    """Whether an owner (not just a reader) holds the lock: a shared lock
    cannot be taken beside an exclusive one."""
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    fcntl.flock(fd, fcntl.LOCK_UN)
    return False


def _owned(root: Path) -> bool:
    """Whether a live dev server holds the project's lock (probed with a
    shared lock, released at once)."""
    try:
        fd = os.open(root / STATE_DIR / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return False
    try:
        return _held_exclusively(fd)
    finally:
        os.close(fd)


def live_server(root: Path) -> DevState | None:
    """The dev server serving ``root``, if one is running and answers.

    A ``dev.json`` that cannot be read, or that no live dev server owns
    (its process is gone, or the project's lock is free), is removed. A
    server that owns the project but refuses connections or does not
    answer within :data:`PROBE_TIMEOUT` is left alone and ``None`` returned
    (the caller runs in-process).
    """
    path = state_path(root)
    if not path.exists():
        return None
    state = _read(path)
    if state is None or not _pid_alive(state.pid) or not _owned(root):
        path.unlink(missing_ok=True)
        return None
    try:
        with LOCAL_OPENER.open(state.base_url + "/_nitro/tasks", timeout=PROBE_TIMEOUT):
            pass
    except urllib.error.HTTPError:
        pass  # it answered: a server is there (its answer is checked by the caller)
    except (urllib.error.URLError, OSError):
        return None
    return state


def _read(path: Path) -> DevState | None:
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
        state = DevState(
            pid=int(data["pid"]), host=str(data["host"]), port=int(data["port"]),
            started=str(data["started"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return state


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True
