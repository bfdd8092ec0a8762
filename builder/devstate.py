"""``.taskpack/dev.json``: how a running ``taskpack dev`` is found.

The dev server writes the file once it is listening and removes it on exit;
the CLI reads it to send ``task list``/``task run`` to that server. A file
whose process is gone, or whose address refuses connections, is stale: it
is removed and ignored, never an error.
"""

from __future__ import annotations

import json
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

STATE_DIR = ".taskpack"
STATE_FILE = "dev.json"
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


def live_server(root: Path) -> DevState | None:
    """The dev server serving ``root``, if one is running and answers.

    A ``dev.json`` that cannot be read, names a dead process, or whose
    address refuses connections is removed. A server that is alive but does
    not answer within :data:`PROBE_TIMEOUT` is left alone and ``None``
    returned (the caller runs in-process).
    """
    path = state_path(root)
    if not path.exists():
        return None
    state = _read(path)
    if state is None or not _pid_alive(state.pid):
        path.unlink(missing_ok=True)
        return None
    try:
        with LOCAL_OPENER.open(state.base_url + "/_nitro/tasks", timeout=PROBE_TIMEOUT):
            pass
    except urllib.error.HTTPError:
        pass  # it answered: a server is there (its answer is checked by the caller)
    except ConnectionRefusedError:
        path.unlink(missing_ok=True)
        return None
    except (urllib.error.URLError, OSError) as exc:
        if isinstance(getattr(exc, "reason", None), ConnectionRefusedError):
            path.unlink(missing_ok=True)
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
