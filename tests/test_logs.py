"""taskpack's log lines (taskpack/logs.py): the format, escaping of what
requests and tasks put in them, one line per run, JSON logs and the access
log switch, in-process and from a built server run as a real process."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import re
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from taskpack import logs
from taskpack.builder.build import build
from taskpack.execution import log_run, new_run_id
from taskpack.store import Outcome, RunRecord
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


# -- a run's line: written directly when only taskpack's handler would see it ------

RUN_LOG = logging.getLogger(logs.RUN_LOGGER)
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
TRICKY = ["plain", "with space", 'quo"te', "eq=ual", "back\\slash", "", "new\nline",
          "\x1b[31mred", "tab\there", "del\x7f", "nel\x85", "sep\u2028", "ünïcödé 日本",
          "nbsp\xa0", "lone\udc80surrogate", FORGED]


def tricky_run(text: str, outcome: Outcome = "error") -> RunRecord:
    return RunRecord(new_run_id() + text, f"t:{text}", f"schedule:{text}", "0" * 16, 1.0, 2.0,
                     1.23456, 2, outcome, None if outcome == "ok" else f"RuntimeError: {text}")


@contextlib.contextmanager
def alone(fmt: str = "text") -> Iterator[io.StringIO]:
    """``logs.setup()`` on a fresh stream, its handler alone on the
    ``taskpack`` logger, so run lines are written directly (pytest attaches
    its capture handlers to loggers that do not propagate when a test
    starts, and a previous test may have left ``taskpack`` so)."""
    parent = logging.getLogger(logs.ROOT)
    others = list(parent.handlers)
    stream = io.StringIO()
    logs.setup({"TASKPACK_LOG_FORMAT": fmt}, stream)
    for handler in others:
        parent.removeHandler(handler)
    try:
        assert logs.direct_handler(RUN_LOG, logging.INFO) is not None
        yield stream
    finally:
        logs.teardown()
        for handler in others:
            parent.addHandler(handler)


class Records(logging.Handler):
    """A user's own handler: keeps every record it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def both_ways(stream: io.StringIO, run: RunRecord, exc: BaseException | None,
              more: dict[str, object] | None) -> tuple[str, str]:
    """The run's output written directly, then through a record (a filter
    that lets everything through is enough to need one), times blanked."""
    log_run(run, logging.ERROR, exc, more)
    direct = stream.getvalue()
    RUN_LOG.addFilter(everything := logging.Filter())
    try:
        assert logs.direct_handler(RUN_LOG, logging.ERROR) is None
        log_run(run, logging.ERROR, exc, more)
    finally:
        RUN_LOG.removeFilter(everything)
    through_record = stream.getvalue()[len(direct):]
    stream.seek(0)
    stream.truncate()
    return TIME.sub("<time>", direct), TIME.sub("<time>", through_record)


@pytest.mark.parametrize("fmt", ["text", "json"])
@pytest.mark.parametrize("text", TRICKY)
def test_a_run_line_written_directly_is_the_records_line(fmt: str, text: str) -> None:
    with alone(fmt) as stream:
        for more in (None, {"job": f"j {text}", "max_attempts": 3, "retry_in_s": 0.5}):
            direct, through_record = both_ways(stream, tricky_run(text), raised(text), more)
            assert direct == through_record
            first, *trace = direct.splitlines() if fmt == "json" else direct.split("\n")[:-1]
            assert len(first.splitlines()) == 1  # one line, whatever the run held
            assert all(line.startswith("    ") for line in trace)
            assert (fmt == "json") == (not trace)


def test_a_run_lines_message_is_the_logfmt_of_its_fields() -> None:
    handler = Records()
    RUN_LOG.addHandler(handler)
    try:
        for text in TRICKY:
            for run, more in ((tricky_run(text), None), (tricky_run(text, "ok"), {"job": text})):
                log_run(run, logging.ERROR, None, more)
                record = handler.records.pop()
                fields = record.taskpack  # type: ignore[attr-defined]
                assert record.getMessage() == logs.logfmt(fields)
                assert list(fields) == ["task", "trigger", "outcome", "attempts", "duration_ms",
                                        "run_id", *(more or ()), *(["error"] if run.error else [])]
                assert (fields["task"], fields["duration_ms"], fields["attempts"]) == (
                    run.task, 1.235, 2)
    finally:
        RUN_LOG.removeHandler(handler)


def test_the_run_line_of_a_real_run_is_unchanged() -> None:
    run = RunRecord("9f2c" * 8, "db:migrate", "schedule:0 * * * *", "0" * 16, 1.0, 2.0, 0.4124,
                    1, "ok")
    with alone() as stream:
        log_run(run, logging.INFO)
        log_run(run._replace(id="run-1", outcome="error", error="ValueError: it broke"),
                logging.ERROR, None, {"job": "j1", "max_attempts": 3})
    assert TIME.sub("<time>", stream.getvalue()).splitlines() == [
        '<time> info    run: task=db:migrate trigger="schedule:0 * * * *" outcome=ok '
        f'attempts=1 duration_ms=0.412 run_id={"9f2c" * 8}',
        '<time> error   run: task=db:migrate trigger="schedule:0 * * * *" outcome=error '
        'attempts=1 duration_ms=0.412 run_id=run-1 job=j1 max_attempts=3 '
        'error="ValueError: it broke"']


def test_whoever_else_listens_to_the_run_logger_gets_each_record() -> None:
    run = tricky_run("x", "ok")
    mine = Records()
    parent, root = logging.getLogger(logs.ROOT), logging.getLogger()
    with alone() as stream:
        for logger in (RUN_LOG, parent, root):  # root: once taskpack propagates
            parent.propagate = logger is root
            logger.addHandler(mine)
            try:
                log_run(run, logging.INFO)
            finally:
                logger.removeHandler(mine)
                parent.propagate = False
    assert [r.taskpack["run_id"] for r in mine.records] == [run.id] * 3  # type: ignore
    assert stream.getvalue().count("\n") == 3


def test_filters_levels_and_silencing_on_the_run_logger_are_obeyed() -> None:
    run = tricky_run("x", "ok")

    def rename(record: logging.LogRecord) -> bool:
        record.msg = "renamed"
        return True

    with alone() as stream:
        handler = logs.direct_handler(RUN_LOG, logging.INFO)
        assert handler is not None
        for logger_filter in (lambda record: False, rename):
            RUN_LOG.addFilter(logger_filter)
            try:
                log_run(run, logging.INFO)
            finally:
                RUN_LOG.removeFilter(logger_filter)
        handler.addFilter(lambda record: False)
        try:
            log_run(run, logging.INFO)
        finally:
            handler.filters.clear()
        for leveled in (RUN_LOG, handler):
            leveled.setLevel(logging.WARNING)
            try:
                log_run(run, logging.INFO)
            finally:
                leveled.setLevel(logging.NOTSET)
        with logs.silenced(logs.RUN_LOGGER):
            log_run(run, logging.ERROR)
    assert stream.getvalue().endswith(" run: renamed\n") and stream.getvalue().count("\n") == 1


def test_caplog_sees_run_records(caplog: pytest.LogCaptureFixture) -> None:
    run = tricky_run("x", "ok")
    with caplog.at_level(logging.INFO, logger=logs.ROOT):
        log_run(run, logging.INFO)  # no setup(): records propagate to caplog
    with alone() as stream:
        logging.getLogger(logs.ROOT).addHandler(caplog.handler)
        try:
            log_run(run, logging.INFO)
        finally:
            logging.getLogger(logs.ROOT).removeHandler(caplog.handler)
    assert [r.taskpack["task"] for r in caplog.records] == ["t:x"] * 2  # type: ignore
    assert stream.getvalue().count("\n") == 1


def test_wrapped_logging_methods_and_record_factories_see_each_record(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Error trackers wrap ``Logger.callHandlers`` (Sentry) or
    ``makeRecord``; tracing libraries set a record factory."""
    seen: list[str] = []
    call_handlers = logging.Logger.callHandlers
    factory = logging.getLogRecordFactory()

    def tracked(self: logging.Logger, record: logging.LogRecord) -> None:
        seen.append(f"call_handlers {record.name}")
        call_handlers(self, record)

    def traced(*args: Any, **kwargs: Any) -> logging.LogRecord:
        seen.append("factory")
        return factory(*args, **kwargs)

    with alone() as stream:
        monkeypatch.setattr(logging.Logger, "callHandlers", tracked)
        log_run(tricky_run("x", "ok"), logging.INFO)
        monkeypatch.undo()
        logging.setLogRecordFactory(traced)
        try:
            log_run(tricky_run("x", "ok"), logging.INFO)
        finally:
            logging.setLogRecordFactory(factory)
        log_run(tricky_run("x", "ok"), logging.INFO)
    assert seen == ["call_handlers taskpack.run", "factory"]
    assert stream.getvalue().count("\n") == 3


def test_run_lines_keep_their_order_with_other_lines_and_threads() -> None:
    log = logging.getLogger("taskpack.server")

    async def main(stream: io.StringIO) -> tuple[str, str]:
        log.info("before")
        log_run(tricky_run("x", "ok"), logging.INFO)
        log.info("after")
        during = stream.getvalue()  # not yet: written when this loop iteration ends
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return during, stream.getvalue()

    with alone() as stream:
        during, after = asyncio.run(main(stream))
        thread = threading.Thread(target=log_run, args=(tricky_run("y", "ok"), logging.INFO))
        thread.start()
        thread.join()
        in_thread = stream.getvalue()[len(after):]  # no loop there: written at once
    assert during == ""
    assert [line.split(": ", 1)[1][:8] for line in after.splitlines()] == [
        "before", "task=t:x", "after"]
    assert in_thread.count("\n") == 1 and " run: task=t:y " in in_thread


def test_a_line_on_the_loop_is_made_when_written_with_the_time_it_was_logged(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Handed straight to taskpack's handler on an event loop, a line's
    message and fields are made when the loop's iteration ends, with the
    other lines of that iteration, and carry the time it was logged."""
    made: list[str] = []

    def message() -> str:
        made.append("message")
        return "task=t outcome=ok"

    def fields() -> dict[str, Any]:
        made.append("fields")
        return {"task": "t", "outcome": "ok"}

    clock = iter([1_700_000_000.25, 1_700_000_999.0])
    monkeypatch.setattr(logs.time, "time", lambda: next(clock))

    async def main(stream: io.StringIO) -> tuple[list[str], str]:
        logs.log(RUN_LOG, logging.INFO, message, fields)
        before = list(made)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return before, stream.getvalue()

    with alone("json") as stream:
        before, written = asyncio.run(main(stream))
    assert before == [] and made == ["message", "fields"]
    line = json.loads(written)
    assert (line["time"], line["message"], line["task"]) == (
        "2023-11-14T22:13:20.250Z", "task=t outcome=ok", "t")


def test_a_line_that_cannot_be_made_is_reported_and_the_others_are_written(
        capsys: pytest.CaptureFixture[str]) -> None:
    def broken() -> str:
        raise RuntimeError("no message")

    async def main() -> None:
        log_run(tricky_run("a", "ok"), logging.INFO)
        logs.log(RUN_LOG, logging.INFO, broken, dict)
        log_run(tricky_run("b", "ok"), logging.INFO)
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    with alone() as stream:
        asyncio.run(main())
    assert [line.split(" run: ", 1)[1][:8] for line in stream.getvalue().splitlines()] == [
        "task=t:a", "task=t:b"]
    assert "--- Logging error ---" in capsys.readouterr().err


class ShortLines(logs.TextFormatter):
    """A user's subclass of taskpack's formatter, formatting records its own way."""

    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname} {record.name} {record.getMessage()[:14]}"


@pytest.mark.parametrize("formatter", [
    logging.Formatter("%(levelname)s %(name)s %(message).14s"), ShortLines()])
def test_a_line_is_made_by_the_formatter_the_handler_has_when_it_is_written(
        formatter: logging.Formatter) -> None:
    """A formatter set between the run's end and the write (not exactly one
    of taskpack's) formats the line as the record ``logger.log`` would make."""
    async def main(stream: io.StringIO) -> str:
        log_run(tricky_run("x", "ok"), logging.INFO)
        handler = logs.direct_handler(RUN_LOG, logging.INFO)
        assert handler is not None
        handler.setFormatter(formatter)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return stream.getvalue()

    with alone() as stream:
        assert asyncio.run(main(stream)) == "INFO taskpack.run task=t:x trigg\n"


class FullDisk(io.StringIO):
    """A stream whose writes fail with ENOSPC while ``full`` is set."""

    full = True

    def write(self, text: str) -> int:
        if self.full:
            raise OSError(28, "No space left on device")
        return super().write(text)


def test_a_stream_that_refuses_writes_loses_only_those_lines() -> None:
    """Lines made when written (a run's) go to a stream that refuses them
    (a full disk): the run and the loop go on, nothing is raised into the
    loop, and lines written once the stream takes them again arrive whole."""
    stream = FullDisk()
    failures: list[dict[str, Any]] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _, ctx: failures.append(ctx))
        log_run(tricky_run("lost", "ok"), logging.INFO)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        stream.full = False
        log_run(tricky_run("kept", "ok"), logging.INFO)
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    with alone():
        handler = logs.direct_handler(RUN_LOG, logging.INFO)
        assert handler is not None
        handler.setStream(stream)
        asyncio.run(main())
    assert failures == []
    assert [line.split(" run: ", 1)[1][:11] for line in stream.getvalue().splitlines()] == [
        "task=t:kept"]
