"""taskpack's log lines (taskpack/logs.py): the format, escaping of what
requests and tasks put in them, one line per run, JSON logs and the access
log switch, in-process and from a built server run as a real process."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from taskpack import logs
from taskpack.builder.build import build
from tests.helpers import write_files
from tests.servers import ServerProcess, free_port, wait_for

TOKEN = "log-token"
LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (debug|info|warning|error|critical) +"
                  r"[\w.]+: ")
"""The start of every line taskpack writes in the text format."""
FORGED = "2026-01-01T00:00:00.000Z info    run: task=forged outcome=ok"
INJECTION = FORGED.replace(" ", "%20")
BOOM = repr(f"boom\n{FORGED}")


def taskpack_line_ok(line: str) -> bool:
    """A line is one of taskpack's (its header) or a traceback's continuation."""
    return bool(LINE.match(line)) or line.startswith("    ")


# -- formatting, in-process ------------------------------------------------------


@pytest.mark.parametrize("raw", ["a\nb", "a\rb", "a\x1b[31mb", "a\u2028b", "a\x85b", "a\x00b",
                                 "a\x7fb", "tab\there"])
def test_escape_leaves_one_printable_line(raw: str) -> None:
    text = logs.escape(raw)
    assert len(text.splitlines()) == 1 and text.isprintable()
    assert text.startswith("a") or text.startswith("tab")


def test_logfmt_quotes_and_escapes() -> None:
    assert logs.logfmt({"a": 1, "b": "x y", "c": "", "d": 'q"=', "e": "n\nl",
                        "f": "back\\slash"}) == (
        'a=1 b="x y" c="" d="q\\"=" e="n\\nl" f="back\\\\slash"')


def record(message: str, *, exc: BaseException | None = None,
           fields: dict[str, object] | None = None) -> logging.LogRecord:
    rec = logging.LogRecord("taskpack.run", logging.ERROR, __file__, 1, message, None,
                            (type(exc), exc, exc.__traceback__) if exc else None)
    if fields is not None:
        rec.taskpack = fields
    return rec


def raised(message: str) -> BaseException:
    try:
        raise RuntimeError(message)
    except RuntimeError as exc:
        return exc


def test_text_lines_cannot_be_forged() -> None:
    exc = raised(f"boom\n{FORGED}")
    text = logs.TextFormatter().format(record(f"task=t error=x\n{FORGED}", exc=exc))
    lines = text.split("\n")
    assert LINE.match(lines[0]) and "\\n" + FORGED in lines[0]
    assert all(line.startswith("    ") for line in lines[1:])  # the traceback
    assert lines[-2:] == ["    RuntimeError: boom", "    " + FORGED]  # indented: not a line
    assert not any(line.startswith(FORGED) for line in lines)


def test_json_lines_have_the_fields_and_one_line() -> None:
    exc = raised("boom\u2028x")
    text = logs.JsonFormatter().format(record("task=t", exc=exc, fields={
        "task": "t", "outcome": "error", "duration_ms": 1.5}))
    assert len(text.splitlines()) == 1 and "\u2028" not in text
    data = json.loads(text)
    assert data["level"] == "error" and data["logger"] == "taskpack.run"
    assert (data["task"], data["outcome"], data["duration_ms"]) == ("t", "error", 1.5)
    assert data["message"] == "task=t" and re.match(r"^\d{4}-.*\.\d{3}Z$", data["time"])
    assert data["traceback"].endswith("RuntimeError: boom\u2028x")


def test_unknown_format_is_refused_and_switches_read_the_environment() -> None:
    with pytest.raises(ValueError, match=r"^TASKPACK_LOG_FORMAT: expected 'text' or 'json', "
                                         r"got 'xml'$"):
        logs.log_format({"TASKPACK_LOG_FORMAT": "xml"})
    assert logs.log_format({}) == "text" and logs.log_format({"TASKPACK_LOG_FORMAT": "JSON"})
    assert not logs.access_log_enabled({})
    assert logs.access_log_enabled({"TASKPACK_ACCESS_LOG": "1"})
    assert not logs.access_log_enabled({"TASKPACK_ACCESS_LOG": "0"})


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    logs.setup({}, stream)
    logs.setup({}, stream)  # idempotent: still one handler
    yield stream
    logs.teardown()


def test_setup_installs_one_handler(captured: io.StringIO) -> None:
    logging.getLogger("taskpack.server").info("hello %s", "world\nforged")
    assert captured.getvalue().count("\n") == 1
    assert re.match(LINE.pattern + r"hello world\\nforged$", captured.getvalue().strip())


# -- a built server, as a real process ------------------------------------------

TASKS = {
    "tasks/echo.py": """
        from taskpack import define_task

        @define_task
        async def run(event):
            return event.payload
    """,
    "tasks/boom.py": f"""
        from taskpack import define_task

        @define_task
        async def run(event):
            raise RuntimeError({BOOM})
    """,
    "taskpack.toml": """
        [server]
        tasks_api = true
    """,
}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_files(tmp_path_factory.mktemp("logs") / "project", TASKS)
    build(root, preset="server", output=root / ".output")
    return root / ".output" / "server"


def serve(bundle: Path, tmp_path: Path, **env: str) -> ServerProcess:
    port = free_port()
    server = ServerProcess([sys.executable, str(bundle / "index.py")],
                           {"PORT": str(port), "HOST": "127.0.0.1",
                            "TASKPACK_TASKS_TOKEN": TOKEN, **env},
                           tmp_path / "server.log", cwd=tmp_path)
    try:
        server.wait_healthy()
    except BaseException:
        server.stop()
        raise
    return server


def call(server: ServerProcess, path: str, token: str | None = TOKEN) -> int:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.post(server.url + path, json={"payload": {"k": "v"}}, headers=headers,
                      timeout=30).status_code


def lines_of(server: ServerProcess, logger: str) -> list[str]:
    return [line for line in server.logs().splitlines()
            if LINE.match(line) and f" {logger}: " in line[:50]]


def test_text_logs_one_line_per_run_no_access_log_nothing_forged(bundle: Path,
                                                                 tmp_path: Path) -> None:
    server = serve(bundle, tmp_path)
    try:
        assert [call(server, "/_nitro/tasks/echo") for _ in range(3)] == [200] * 3
        assert call(server, "/_nitro/tasks/boom") == 500
        # A forged line in the path (refused: no token) and in a task's error.
        assert call(server, f"/_nitro/tasks/x%0A{INJECTION}", token=None) == 401
        assert call(server, f"/_nitro/tasks/x%0D%0A{INJECTION}") == 404
        wait_for(lambda: len(lines_of(server, "run")) >= 4 or None, 10, "four run lines")
    finally:
        server.terminate()
    text = server.log.read_text()
    runs = lines_of(server, "run")
    assert len(runs) == 4, text
    assert sum("task=echo trigger=http outcome=ok attempts=1 duration_ms=" in r for r in runs) == 3
    (boom,) = [r for r in runs if "task=boom" in r]
    assert " error " in boom and f'error="RuntimeError: boom\\n{FORGED}"' in boom
    assert not lines_of(server, "access")
    assert not [line for line in text.splitlines() if line.startswith(FORGED)], text
    ours = [line for line in text.splitlines() if taskpack_line_ok(line)]
    assert sum("x\\n" + FORGED in line for line in ours) == 1, text  # the refusal, escaped


def test_json_logs_and_the_access_log(bundle: Path, tmp_path: Path) -> None:
    server = serve(bundle, tmp_path, TASKPACK_LOG_FORMAT="json", TASKPACK_ACCESS_LOG="1")
    try:
        assert call(server, "/_nitro/tasks/echo") == 200
        assert call(server, f"/_nitro/tasks/x%0A{INJECTION}", token=None) == 401
        wait_for(lambda: len(lines_of_json(server, "taskpack.access")) >= 3 or None, 10,
                 "access lines")
    finally:
        server.terminate()
    (run,) = lines_of_json(server, "taskpack.run")
    assert {k: run[k] for k in ("level", "task", "trigger", "outcome", "attempts")} == {
        "level": "info", "task": "echo", "trigger": "http", "outcome": "ok", "attempts": 1}
    assert isinstance(run["duration_ms"], float) and len(run["run_id"]) == 32
    access = lines_of_json(server, "taskpack.access")
    paths = {(a["method"], a["path"], a["status"]) for a in access}
    assert ("POST", "/_nitro/tasks/echo", 200) in paths
    assert ("POST", f"/_nitro/tasks/x\n{FORGED}", 401) in paths  # decoded, one JSON line
    assert ("GET", "/_health", 200) in paths


def lines_of_json(server: ServerProcess, logger: str) -> list[dict[str, object]]:
    found = []
    for line in server.logs().splitlines():
        if line.startswith("{"):
            data = json.loads(line)
            if data["logger"] == logger:
                found.append(data)
    return found


def test_bad_log_format_is_one_error_line(bundle: Path, tmp_path: Path) -> None:
    port = free_port()
    server = ServerProcess([sys.executable, str(bundle / "index.py")],
                           {"PORT": str(port), "TASKPACK_TASKS_TOKEN": TOKEN,
                            "TASKPACK_LOG_FORMAT": "xml"}, tmp_path / "bad.log", cwd=tmp_path)
    assert server.process.wait(30) == 2
    assert server.logs().strip() == (
        "error: TASKPACK_LOG_FORMAT: expected 'text' or 'json', got 'xml'")


def test_lines_logged_on_the_loop_are_written_together_in_order(captured: io.StringIO) -> None:
    log = logging.getLogger("taskpack.run")

    async def main() -> tuple[str, str]:
        for index in range(3):
            log.info("line %d", index)
        during = captured.getvalue()  # not yet: written when this loop iteration ends
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return during, captured.getvalue()

    during, after = asyncio.run(main())
    assert during == ""
    assert [line.rsplit(" ", 1)[1] for line in after.splitlines()] == ["0", "1", "2"]
