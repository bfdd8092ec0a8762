"""Faults of issue 11 at the HTTP edge, against a real ``taskpack dev``
process (and the platform entries' own request handling): whatever a task
raises, whatever a client sends, the answer is the JSON error shape and the
server lives on. docs/faults.md lists which test covers which item."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import write_files
from tests.servers import wait_for

TASKPACK = str(Path(sys.executable).with_name("taskpack"))

FILES = {
    "tasks/echo.py": """
        from taskpack import define_task

        @define_task
        async def run(event):
            return event.payload
    """,
    "tasks/note.py": """
        from pathlib import Path

        from taskpack import define_task

        @define_task
        def run(event):
            with (Path(__file__).parent.parent / "notes.txt").open("a") as fh:
                fh.write(repr(event.payload) + "\\n")
            return {"noted": True}
    """,
    "tasks/exit/sync.py": """
        import sys

        from taskpack import define_task

        @define_task
        def run(event):
            sys.exit(3)
    """,
    "tasks/exit/interrupt.py": """
        from taskpack import define_task

        @define_task
        async def run(event):
            raise KeyboardInterrupt
    """,
    "tasks/exit/generator.py": """
        from taskpack import define_task

        @define_task
        def run(event):
            raise GeneratorExit("closed")
    """,
    "tasks/exit/tick.py": """
        import sys
        from pathlib import Path

        from taskpack import define_task

        @define_task
        def run(event):
            with (Path(__file__).parent.parent.parent / "ticks.txt").open("a") as fh:
                fh.write("tick\\n")
            raise SystemExit("scheduled exit")
    """,
    "tasks/exit/atimport.py": """
        import sys

        from taskpack import define_task

        sys.exit("no")

        @define_task
        def run(event):
            return "never imported this far"
    """,
    "tasks/surrogate.py": """
        from taskpack import define_task

        @define_task
        def run(event):
            name = b"caf\\xff.txt".decode("utf-8", "surrogateescape")
            if event.payload.get("fail"):
                raise ValueError(f"unexpected file: {name}")
            return {"file": name}
    """,
}


def non_loopback_address() -> str | None:
    """An address of this machine that is not loopback (where to connect so
    that the server sees a non-loopback peer), if there is one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.254", 9))  # no packet is sent
        except OSError:
            return None
        address: str = probe.getsockname()[0]
    return None if address.startswith("127.") or address == "0.0.0.0" else address


class DevProcess:
    """``taskpack dev`` started with ``args`` and ``env``, output in a file."""

    def __init__(self, root: Path, *args: str, env: Mapping[str, str] | None = None) -> None:
        self.root = root
        self.log = root.parent / f"{root.name}-dev.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [TASKPACK, "dev", "--port", "0", "--root", str(root), *args],
                stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            )
        state = wait_for(self._state, 30, "dev.json")
        self.port = int(state["port"])
        self.url = f"http://127.0.0.1:{self.port}"

    def _state(self) -> dict[str, Any] | None:
        if self.proc.poll() is not None:
            raise AssertionError(f"taskpack dev exited {self.proc.returncode}: {self.output()}")
        try:
            data: dict[str, Any] = json.loads((self.root / ".taskpack/dev.json").read_text())
        except (OSError, ValueError):
            return None
        return data if data.get("pid") == self.proc.pid else None  # not a stale one

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevProcess]:
    """One dev server for the module, listening on every interface (so a
    non-loopback peer can reach it) and told to trust proxy headers from
    anyone, as a shell exporting ``FORWARDED_ALLOW_IPS='*'`` would."""
    root = write_files(tmp_path_factory.mktemp("faults") / "project", FILES)
    server = DevProcess(root, "--host", "0.0.0.0", env={"FORWARDED_ALLOW_IPS": "*"})
    yield server
    assert server.stop() == 0, server.output()


def post_raw(dev: DevProcess, name: str, body: bytes,
             headers: Mapping[str, str] | None = None) -> httpx.Response:
    return httpx.post(f"{dev.url}/_nitro/tasks/{name}", content=body, timeout=30,
                      headers={"content-type": "application/json", **(headers or {})})


def assert_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    data: dict[str, Any] = response.json()
    assert (data["error"], data["statusCode"]) == (True, status)
    return data


def runs_of(dev: DevProcess, name: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{dev.url}/_nitro/tasks/{name}/runs", timeout=30)
    assert response.status_code == 200, response.text
    runs: list[dict[str, Any]] = response.json()["runs"]
    return runs


# -- items 6 and 10: bad JSON is a 400 before anything runs ------------------------------


@pytest.mark.parametrize(("body", "message"), [
    (b'{"payload": {"note": "caf\\ud83d"}}', "request body holds a lone UTF-16 surrogate"),
    (b'{"payload": {"k\\udc80": 1}}', "request body holds a lone UTF-16 surrogate"),
    (b'{"payload": {"n": NaN}}', "request body is not valid JSON: NaN is not a JSON number"),
    (b'{"payload": {"n": -Infinity}}', "request body is not valid JSON: -Infinity"),
    (b'{"payload": ' + b"[" * 1000 + b"]" * 1000 + b"}",
     "request body nests deeper than 100 levels"),
    (b'{"payload": {"a": ' + b"[" * 150 + b"]" * 150 + b"}}",
     "request body nests deeper than 100 levels"),
])
def test_payloads_that_cannot_be_stored_are_refused_before_the_run(
        dev: DevProcess, body: bytes, message: str) -> None:
    data = assert_error(post_raw(dev, "note", body), 400)
    assert data["message"].startswith(message), data["message"]
    assert not (dev.root / "notes.txt").exists(), "the task ran"


def test_well_formed_escapes_and_nesting_are_accepted(dev: DevProcess) -> None:
    body = b'{"payload": {"emoji": "\\ud83d\\ude00", "deep": ' + b"[" * 90 + b"]" * 90 + b"}}"
    response = post_raw(dev, "echo", body)
    assert response.status_code == 200, response.text
    assert response.json()["emoji"] == "\U0001F600"


def test_surrogates_from_a_task_are_json_not_a_plain_500(tmp_path: Path) -> None:
    server = DevProcess(write_files(tmp_path / "p", {"tasks/surrogate.py":
                                                      FILES["tasks/surrogate.py"]}))
    try:
        response = httpx.get(f"{server.url}/_nitro/tasks/surrogate", timeout=30)
        assert response.status_code == 200, response.text
        assert response.json() == {"file": "caf\udcff.txt"}
        response = httpx.get(f"{server.url}/_nitro/tasks/surrogate?fail=1", timeout=30)
        data = assert_error(response, 500)
        assert (data["message"], data["exception"]) == ("unexpected file: caf\udcff.txt",
                                                        "ValueError")
    finally:
        server.stop()


def test_an_unreadable_history_is_a_json_error(tmp_path: Path) -> None:
    """A store file that is not a database: ``taskpack dev`` refuses to
    start with one line naming it; an API whose store fails to read answers
    /runs with the JSON error shape (503), and its tasks still run."""
    from taskpack import Registry, define_task
    from taskpack.http import HttpRequest, TaskApi, handle, loopback_only

    root = write_files(tmp_path / "project", {"tasks/echo.py": FILES["tasks/echo.py"]})
    history = root / ".taskpack" / "store.sqlite"
    history.parent.mkdir()
    history.write_bytes(b"this is not a database\n" * 200)
    done = subprocess.run([TASKPACK, "dev", "--root", str(root), "--port", "0"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: store {history}: file is not a database")

    registry = Registry.of({"echo": define_task(lambda e: e.payload)}, root=root,
                           store="sqlite:///.taskpack/store.sqlite")
    api = TaskApi(registry, policy=loopback_only())

    async def ask(path: str) -> tuple[int, dict[str, Any]]:
        response = await handle(api, HttpRequest("GET", path, query=(("x", "1"),),
                                                 client_host="127.0.0.1"))
        assert response is not None
        assert response.headers["content-type"].startswith("application/json")
        return response.status, json.loads(response.body)

    status, body = asyncio.run(ask("/_nitro/tasks/echo/runs"))
    assert (status, body["error"]) == (503, True)
    assert "file is not a database" in body["message"]
    assert asyncio.run(ask("/_nitro/tasks/echo")) == (200, {"x": "1"})


# -- item 3: no task runs from another site, nor on a browser's GET ---------------------


CROSS_SITE = {"sec-fetch-site": "cross-site", "sec-fetch-mode": "no-cors",
              "sec-fetch-dest": "image"}


@pytest.mark.parametrize(("method", "headers", "body"), [
    ("GET", CROSS_SITE, None),  # <img src="http://127.0.0.1:3000/_nitro/tasks/note">
    ("GET", {"sec-fetch-site": "same-site", "sec-fetch-mode": "no-cors"}, None),
    ("POST", {"sec-fetch-site": "cross-site", "sec-fetch-mode": "cors",
              "content-type": "application/json"}, b"{}"),
    ("GET", {"sec-fetch-site": "none", "sec-fetch-mode": "navigate"}, None),  # a link, typed
    ("POST", {"sec-fetch-site": "same-origin", "sec-fetch-mode": "navigate",
              "content-type": "application/x-www-form-urlencoded"}, b"a=1"),  # a form
    ("POST", {"origin": "http://localhost", "content-type": "text/plain"}, b"{}"),
    ("POST", {"origin": "https://evil.example", "content-type": "application/json"}, b"{}"),
])
def test_browsers_cannot_run_tasks_without_a_json_post_from_this_origin(
        dev: DevProcess, method: str, headers: dict[str, str], body: bytes | None) -> None:
    response = httpx.request(method, f"{dev.url}/_nitro/tasks/note", headers=headers,
                             content=body, timeout=30)
    assert_error(response, 403)
    assert not (dev.root / "notes.txt").exists(), "the task ran"


def test_the_servers_own_pages_curl_and_the_cli_still_run_tasks(dev: DevProcess) -> None:
    same_origin = {"sec-fetch-site": "same-origin", "sec-fetch-mode": "cors",
                   "origin": dev.url}
    response = httpx.post(f"{dev.url}/_nitro/tasks/echo", json={"payload": {"a": 1}},
                          headers=same_origin, timeout=30)
    assert (response.status_code, response.json()) == (200, {"a": 1})
    navigate = {"sec-fetch-site": "none", "sec-fetch-mode": "navigate"}
    assert httpx.get(f"{dev.url}/_nitro/tasks", headers=navigate).status_code == 200
    assert httpx.get(f"{dev.url}/_nitro/tasks/echo/runs", headers=navigate).status_code == 200
    assert httpx.get(f"{dev.url}/_nitro/tasks/echo?b=2").json() == {"b": "2"}  # curl
    result = subprocess.run([TASKPACK, "task", "run", "echo", "--payload", '{"c": 3}',
                             "--root", str(dev.root)], capture_output=True, text=True,
                            timeout=60)
    assert (result.returncode, result.stdout) == (0, '{"c": 3}\n')


# -- item 4 and --host: the real peer is judged -----------------------------------------


def test_a_non_loopback_host_warns_and_proxy_headers_are_ignored(dev: DevProcess) -> None:
    assert ("taskpack dev: warning: listening on 0.0.0.0, but only clients on this machine "
            "(loopback) are served; others get 403") in dev.output()
    address = non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback address to connect from")
    response = httpx.get(f"http://{address}:{dev.port}/_nitro/tasks/note",
                         headers={"x-forwarded-for": "127.0.0.1", "x-forwarded-proto": "http",
                                  "host": f"127.0.0.1:{dev.port}"}, timeout=30)
    data = assert_error(response, 403)
    assert data["message"] == "the task API answers loopback clients only"
    assert not (dev.root / "notes.txt").exists(), "the task ran"


# -- item 2: whatever a task raises is the run's failure ----------------------------


@pytest.mark.parametrize(("name", "exception", "message"), [
    ("exit:sync", "SystemExit", "SystemExit: 3"),
    ("exit:interrupt", "KeyboardInterrupt", "KeyboardInterrupt"),
    ("exit:generator", "GeneratorExit", "GeneratorExit: closed"),
])
def test_a_task_raising_a_base_exception_is_a_json_500(dev: DevProcess, name: str,
                                                       exception: str, message: str) -> None:
    data = assert_error(httpx.post(f"{dev.url}/_nitro/tasks/{name}", timeout=30), 500)
    assert (data["message"], data["exception"]) == (message, exception)
    assert dev.alive(), dev.output()
    run = wait_for(lambda: (runs_of(dev, name) or [None])[0], 10, "the recorded run")
    assert (run["outcome"], run["error"], run["attempts"]) == ("error", message, 1)


def test_sys_exit_at_import_is_a_load_error(dev: DevProcess) -> None:
    data = assert_error(httpx.get(f"{dev.url}/_nitro/tasks/exit:atimport", timeout=30), 500)
    assert "raised SystemExit: no" in data["message"]
    assert dev.alive(), dev.output()


def test_a_scheduled_system_exit_does_not_stop_the_server(tmp_path: Path) -> None:
    files = {"tasks/exit/tick.py": FILES["tasks/exit/tick.py"],
             "taskpack.toml": '[scheduled_tasks]\n"* * * * * *" = "exit:tick"\n'}
    server = DevProcess(write_files(tmp_path / "project", files))
    try:
        ticks = server.root / "ticks.txt"
        wait_for(lambda: (ticks.exists() and ticks.read_text().count("tick") >= 3) or None, 20,
                 "three scheduled runs that each raise SystemExit")
        assert server.alive(), server.output()
        assert httpx.get(f"{server.url}/_nitro/tasks", timeout=30).status_code == 200
        assert 'outcome=error attempts=1' in server.output()
        assert 'error="SystemExit: scheduled exit"' in server.output()  # the run's line
    finally:
        assert server.stop() == 0, server.output()
