"""taskpack's own log lines: one format on every platform.

Every entry point (``taskpack dev``, the ``server``/``server_cluster``
bundles, the ``asgi`` bundle under any ASGI server, the Cloudflare Worker,
the Vercel function) calls :func:`setup`, which gives the ``taskpack``
logger one handler on stderr with this module's formatter. Library code only
logs to ``logging.getLogger("taskpack.<module>")``.

Two formats, chosen by ``TASKPACK_LOG_FORMAT``:

* ``text`` (default): ``<UTC time> <level> <logger>: <message>``, e.g.
  ``2026-11-30T00:25:01.123Z info    run: task=db:migrate trigger=http
  outcome=ok attempts=1 duration_ms=0.41 id=9f…``;
* ``json``: one JSON object per line with ``time``, ``level``, ``logger``,
  ``message`` and, for run and access lines, their fields (``task``,
  ``outcome``, ``duration_ms``, ...; see :data:`RUN_LOGGER`).

Lines are safe to read line by line whatever a request or a task put in
them: every control character (C0, DEL, C1, U+2028/U+2029) in a message is
escaped (``\\n``, ``\\x1b``, ``\\u2028``), so ``%0A`` in a request path or a
newline in an exception message cannot forge a line. A traceback follows
its line as continuation lines, each indented by four spaces and escaped
the same way, so nothing in it can pass for a line of its own; in JSON it is
the ``traceback`` field.

Each run is one line on the ``taskpack.run`` logger (INFO when it
succeeded, WARNING when its payload was refused, ERROR otherwise). Per
request there is no line unless ``TASKPACK_ACCESS_LOG=1`` turns on the
access log (``taskpack.access``: method, path, status, duration, client).

Standard library only: this module is bundled into every deploy output.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import sys
import time
import traceback
from collections.abc import Iterator, Mapping
from typing import IO, Any

FORMAT_ENV = "TASKPACK_LOG_FORMAT"
ACCESS_LOG_ENV = "TASKPACK_ACCESS_LOG"
FORMATS = ("text", "json")
ROOT = "taskpack"
RUN_LOGGER = "taskpack.run"
ACCESS_LOGGER = "taskpack.access"
FIELDS = "taskpack"
"""The ``extra`` key under which a record carries its structured fields."""

_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))}
_ESCAPES.update({0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r", 0x2028: "\\u2028", 0x2029: "\\u2029"})
_JSON_ESCAPES = {code: f"\\u{code:04x}" for code in (*range(0x7F, 0xA0), 0x2028, 0x2029)}


def escape(text: str) -> str:
    """``text`` with every control character escaped (``\\n``, ``\\x1b``,
    ``\\u2028``): one line, whatever it held."""
    # Every character escaped is non-printable: a printable text (the
    # common case, checked in C) is returned as is.
    return text if text.isprintable() else text.translate(_ESCAPES)


_NEEDS_QUOTES = re.compile(r'[\s"=\\\x00-\x1f\x7f-\x9f\u2028\u2029]')


def logfmt(fields: Mapping[str, Any]) -> str:
    """``key=value`` pairs. A value that is empty or holds a space, a quote,
    ``=``, a backslash or a control character is quoted, with ``\\`` and
    ``\"`` escaped and control characters written as escapes (``\\n``)."""
    parts = []
    for key, value in fields.items():
        text = str(value)
        if not text or _NEEDS_QUOTES.search(text):
            text = '"' + escape(text.replace("\\", "\\\\").replace('"', '\\"')) + '"'
        parts.append(f"{key}={text}")
    return " ".join(parts)


def log_format(env: Mapping[str, str] | None = None) -> str:
    """``TASKPACK_LOG_FORMAT`` (``text`` or ``json``, default ``text``);
    ``ValueError`` naming the variable for anything else."""
    env = os.environ if env is None else env
    value = env.get(FORMAT_ENV, "").strip().lower() or "text"
    if value not in FORMATS:
        raise ValueError(f"{FORMAT_ENV}: expected 'text' or 'json', got {env[FORMAT_ENV]!r}")
    return value


def access_log_enabled(env: Mapping[str, str] | None = None) -> bool:
    """Whether ``TASKPACK_ACCESS_LOG`` asks for the access log (``1``,
    ``true``, ``yes`` or ``on``); off by default."""
    env = os.environ if env is None else env
    return env.get(ACCESS_LOG_ENV, "").strip().lower() in ("1", "true", "yes", "on")


_second: list[Any] = [None, ""]  # the last whole second formatted, and its text


def _timestamp(created: float) -> str:
    seconds = int(created)
    millis = int((created - seconds) * 1000)
    if _second[0] != seconds:
        _second[:] = [seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))]
    return f"{_second[1]}.{millis:03d}Z"


def _short(name: str) -> str:
    return name[len(ROOT) + 1:] if name.startswith(ROOT + ".") else name


def _traceback(record: logging.LogRecord) -> str | None:
    if not record.exc_info or record.exc_info[1] is None:
        return None
    return "".join(traceback.format_exception(record.exc_info[1])).rstrip("\n")


class TextFormatter(logging.Formatter):
    """``<UTC time> <level> <logger>: <message>``, escaped to one line; a
    traceback follows as indented, escaped continuation lines."""

    def format(self, record: logging.LogRecord) -> str:
        line = (f"{_timestamp(record.created)} {record.levelname.lower():<7} "
                f"{_short(record.name)}: {escape(record.getMessage())}")
        trace = _traceback(record)
        if trace:
            line += "".join(f"\n    {escape(part)}" for part in trace.split("\n"))
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time``, ``level``, ``logger``,
    ``message``, the record's structured fields, ``traceback``."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": _timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, FIELDS, None)
        if isinstance(fields, Mapping):
            for key, value in fields.items():
                data.setdefault(key, value)
        trace = _traceback(record)
        if trace:
            data["traceback"] = trace
        text = json.dumps(data, ensure_ascii=False, default=str)
        return text.translate(_JSON_ESCAPES)


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler :func:`setup` installs (recognised so it is installed once).

    Lines logged on a running event loop are written together once the
    loop's current iteration ends (one write for every run that iteration
    finished, instead of one write and flush per line); elsewhere (worker
    threads, no loop, shutdown) at once. At most :data:`MAX_PENDING` lines
    wait."""

    MAX_PENDING = 1000

    def __init__(self, stream: IO[str]) -> None:
        super().__init__(stream)
        self._pending: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        self._pending.append(line)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None or len(self._pending) >= self.MAX_PENDING:
            self.flush()
        elif len(self._pending) == 1:
            loop.call_soon(self.flush)

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            lines, self._pending = self._pending, []
            try:
                if lines:
                    self.stream.write("".join(lines))
                self.stream.flush()
            except (OSError, ValueError):  # a closed stream: nothing to do
                pass


def setup(env: Mapping[str, str] | None = None, stream: IO[str] | None = None) -> None:
    """Send the ``taskpack`` logger's INFO lines and up to ``stream``
    (default stderr) in the format ``TASKPACK_LOG_FORMAT`` asks for.
    Idempotent: a second call only replaces the formatter. The logger does
    not propagate, so a host's root handler does not print each line twice.
    ``ValueError`` for an unknown format (see :func:`log_format`)."""
    formatter: logging.Formatter = (JsonFormatter() if log_format(env) == "json"
                                    else TextFormatter())
    logger = logging.getLogger(ROOT)
    handler = next((h for h in logger.handlers if isinstance(h, _Handler)), None)
    if handler is None:
        handler = _Handler(stream or sys.stderr)
        logger.addHandler(handler)
    elif stream is not None:
        handler.setStream(stream)
    handler.setFormatter(formatter)
    logger.setLevel(logging.INFO)
    logger.propagate = False


@contextlib.contextmanager
def silenced(name: str) -> Iterator[None]:
    """No lines from logger ``name`` inside the block (a caller that
    reports the outcome itself, like ``taskpack task run``)."""
    logger = logging.getLogger(name)
    before, logger.disabled = logger.disabled, True
    try:
        yield
    finally:
        logger.disabled = before


def lean_records() -> None:
    """Skip what taskpack's formats never show when a record is made: the
    caller's file and line, and the thread and process names and ids (the
    logging HOWTO's "optimization" switches). Process-wide, so only the
    bundles' own servers call it (``server``, ``server_cluster``), never an
    app that hosts the ``asgi`` bundle."""
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def teardown() -> None:
    """Undo :func:`setup` (tests; an embedding app taking logging back)."""
    logger = logging.getLogger(ROOT)
    for handler in [h for h in logger.handlers if isinstance(h, _Handler)]:
        logger.removeHandler(handler)
    logger.setLevel(logging.NOTSET)
    logger.propagate = True
