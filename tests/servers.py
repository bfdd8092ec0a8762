"""Running built bundles as real processes, for the end-to-end tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx

from tests.helpers import REPO

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The environment of a bundle process: no PYTHONPATH or virtualenv of the
    test run leaks in, so the bundle must stand on its own."""
    leaky = ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
    env = {k: v for k, v in os.environ.items()
           if k not in leaky and not k.startswith("TASKPACK_")}
    env.update({"HOST": "127.0.0.1", "PYTHONUNBUFFERED": "1", **extra})
    return env


def wait_for(check: Callable[[], T | None], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


class ServerProcess:
    """A bundle's server started as a subprocess, logging to a file."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], log: Path,
                 cwd: Path | None = None) -> None:
        self.port = int(env["PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(list(argv), env=clean_env(env), cwd=cwd or REPO,
                                            stdout=out, stderr=subprocess.STDOUT)

    def logs(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_healthy(self, timeout: float = 30) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited {self.process.returncode}:\n{self.logs()}")
            try:
                response = httpx.get(self.url + "/_health", timeout=1)
            except httpx.TransportError:
                return None
            return response.json() if response.status_code == 200 else None

        return wait_for(check, timeout, "/_health")

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM, then the exit status."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def read_records(path: Path) -> list[dict[str, Any]]:
    """The JSON lines the example's tasks append (``TASKPACK_EXAMPLE_RECORD``)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts" if sys.platform == "win32" else "bin") / "python"
