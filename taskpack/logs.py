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
succeeded, WARNING when its payload was refused, ERROR otherwise). It is
logged with :func:`log`, which hands the line straight to taskpack's handler,
without a :class:`logging.LogRecord`, when that handler is all the record
would meet (:func:`direct_handler`), and is ``logger.log`` otherwise: a
host's handlers, filters, levels and wrappers see every record as before.
Handed straight over on an event loop, the line is also made there when the
loop's iteration ends, with the lines of every run that iteration finished
(measured: about 5% more requests per second for the built server). Per
request there is no line unless ``TASKPACK_ACCESS_LOG=1`` turns on the
access log (``taskpack.access``: method, path, status, duration, client).

Standard library only: this module is bundled into every deploy output.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import operator
import os
import re
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from typing import IO, Any, cast

from .jsonenc import encoder

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
    """``key=value`` pairs, each value as :func:`logfmt_value` writes it."""
    return " ".join(f"{key}={logfmt_value(str(value))}" for key, value in fields.items())


def logfmt_value(text: str) -> str:
    """``text`` as a ``key=value`` line's value: quoted when it is empty or
    holds a space, a quote, ``=``, a backslash or a control character, with
    ``\\`` and ``\"`` escaped and control characters written as escapes
    (``\\n``)."""
    if not text or _NEEDS_QUOTES.search(text):
        return '"' + escape(text.replace("\\", "\\\\").replace('"', '\\"')) + '"'
    return text


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


_second: tuple[int, str] = (-1, "")  # the last whole second formatted, and its text
_MILLIS = [f".{millis:03d}Z" for millis in range(1000)]


def _timestamp(created: float) -> str:
    global _second
    seconds = int(created)
    second = _second
    if second[0] != seconds:
        second = _second = (seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)))
    return second[1] + _MILLIS[int((created - seconds) * 1000)]


def _short(name: str) -> str:
    return name[len(ROOT) + 1:] if name.startswith(ROOT + ".") else name


def _exception(record: logging.LogRecord) -> BaseException | None:
    return record.exc_info[1] if record.exc_info else None


def _traceback(exc: BaseException | None) -> str | None:
    if exc is None:
        return None
    return "".join(traceback.format_exception(exc)).rstrip("\n")


_HEADS: dict[tuple[str, str], str] = {}
"""What a text line shows between the time and the message, by level name
and logger name (a few of each; the first 256 pairs kept)."""


class _PartsFormatter(logging.Formatter):
    """A formatter that makes a line from a record's parts
    (:meth:`format_parts`), so that a run's line can be made without a
    :class:`logging.LogRecord` (see :func:`log`)."""

    SHOWS_FIELDS = False
    """Whether a line shows the record's structured fields (else
    :meth:`format_parts` is given None for them)."""

    def format(self, record: logging.LogRecord) -> str:
        return self.format_parts(record.created, record.levelname, record.name,
                                 record.getMessage(), getattr(record, FIELDS, None),
                                 _exception(record))

    def format_parts(self, created: float, level: str, name: str, message: str,
                     fields: Mapping[str, Any] | None, exc: BaseException | None) -> str:
        """The line of a record with these attributes (``created``,
        ``levelname``, ``name``, its message, ``record.taskpack`` and the
        exception of its ``exc_info``), without the record."""
        raise NotImplementedError


class TextFormatter(_PartsFormatter):
    """``<UTC time> <level> <logger>: <message>``, escaped to one line; a
    traceback follows as indented, escaped continuation lines."""

    def format_parts(self, created: float, level: str, name: str, message: str,
                     fields: Mapping[str, Any] | None, exc: BaseException | None) -> str:
        head = _HEADS.get((level, name))
        if head is None:
            head = f" {level.lower():<7} {_short(name)}: "
            if len(_HEADS) < 256:
                _HEADS[level, name] = head
        line = f"{_timestamp(created)}{head}{escape(message)}"
        trace = _traceback(exc)
        if trace:
            line += "".join(f"\n    {escape(part)}" for part in trace.split("\n"))
        return line


_JSON = encoder(ensure_ascii=False, default=str)  # json.dumps's options, built once


class JsonFormatter(_PartsFormatter):
    """One JSON object per line: ``time``, ``level``, ``logger``,
    ``message``, the record's structured fields, ``traceback``."""

    SHOWS_FIELDS = True

    def format_parts(self, created: float, level: str, name: str, message: str,
                     fields: Mapping[str, Any] | None, exc: BaseException | None) -> str:
        """As :meth:`TextFormatter.format_parts`."""
        data: dict[str, Any] = {
            "time": _timestamp(created),
            "level": level.lower(),
            "logger": name,
            "message": message,
        }
        if isinstance(fields, Mapping):
            for key, value in fields.items():
                data.setdefault(key, value)
        trace = _traceback(exc)
        if trace:
            data["traceback"] = trace
        text = _JSON(data)
        # What JSON leaves as is but a line splitter may break at: DEL, C1,
        # U+2028, U+2029 (an ASCII line has no other).
        if text.isascii() and "\x7f" not in text:
            return text
        return text.translate(_JSON_ESCAPES)


class _Line:
    """A line handed to :class:`_Handler` by :func:`log`, made when it is
    written: its time, level, logger, and the functions that give its
    message and its fields."""

    __slots__ = ("created", "exc", "fields", "level", "message", "name")

    def __init__(self, created: float, level: int, name: str, message: Callable[[], str],
                 fields: Callable[[], Mapping[str, Any]], exc: BaseException | None) -> None:
        self.created, self.level, self.name = created, level, name
        self.message, self.fields, self.exc = message, fields, exc

    def render(self, formatter: logging.Formatter | None) -> str:
        """The line as ``formatter`` writes it (as the record it stands for,
        when ``formatter`` is not one of this module's)."""
        if type(formatter) in _FORMATTERS:  # exactly: a subclass may format otherwise
            ours = cast(_PartsFormatter, formatter)
            return ours.format_parts(
                self.created, logging.getLevelName(self.level), self.name, self.message(),
                self.fields() if ours.SHOWS_FIELDS else None, self.exc)
        return (formatter or logging.Formatter()).format(self.record())

    def record(self) -> logging.LogRecord:
        """The :class:`logging.LogRecord` ``logger.log`` would have made."""
        exc = self.exc
        record = logging.LogRecord(self.name, self.level, "", 0, self.message(), None,
                                   (type(exc), exc, exc.__traceback__) if exc else None)
        record.created = self.created
        record.msecs = int((self.created - int(self.created)) * 1000) + 0.0  # as LogRecord's
        setattr(record, FIELDS, self.fields())
        return record


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler :func:`setup` installs (recognised so it is installed once).

    Lines logged on a running event loop are written together once the
    loop's current iteration ends (one write for every run that iteration
    finished, instead of one write and flush per line), and the lines
    :func:`log` hands over (:class:`_Line`) are made then too, in order
    with the others; elsewhere (worker threads, no loop, shutdown) at once.
    At most :data:`MAX_PENDING` lines wait."""

    MAX_PENDING = 1000

    def __init__(self, stream: IO[str]) -> None:
        super().__init__(stream)
        self._pending: list[str | _Line] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self.add(line)

    def add(self, line: str | _Line) -> None:
        """Write ``line`` (formatted, without its terminator; or a
        :class:`_Line` to format when written) as :meth:`emit` writes a
        record's. The caller holds :attr:`lock`."""
        self._pending.append(line + self.terminator if isinstance(line, str) else line)
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
                    self.stream.write("".join([line if isinstance(line, str) else
                                               self._made(line) for line in lines]))
                self.stream.flush()
            except (OSError, ValueError):  # a closed stream: nothing to do
                pass

    def _made(self, line: _Line) -> str:
        """``line`` made, with its terminator; one that cannot be made is
        reported as :meth:`emit` reports a record it cannot format
        (:meth:`logging.Handler.handleError`) and left out."""
        try:
            return line.render(self.formatter) + self.terminator
        except Exception:  # reported with this exception's traceback
            self.handleError(logging.LogRecord(line.name, line.level, "", 0,
                                               "a line that could not be made", None, None))
            return ""


_FORMATTERS = (TextFormatter, JsonFormatter)
_logger_hooks = operator.attrgetter("log", "_log", "makeRecord", "handle", "filter",
                                    "callHandlers")
_handler_hooks = operator.attrgetter("handle", "filter")
_standard: tuple[Any, ...] = ()  # the hooks last found to be the standard library's


def _hooks_standard() -> bool:
    """Whether the methods a record goes through and the record factory are
    the standard library's own (cached while they stay the same objects)."""
    global _standard
    hooks = (*_logger_hooks(logging.Logger), *_handler_hooks(logging.Handler),
             logging.getLogRecordFactory())
    if hooks != _standard:
        *methods, factory = hooks
        if factory is not logging.LogRecord or any(
                getattr(getattr(method, "__code__", None), "co_filename", None)
                != logging.__file__ for method in methods):
            return False
        _standard = hooks
    return True


def direct_handler(logger: logging.Logger, level: int) -> _Handler | None:
    """taskpack's handler when it is all that a record of ``level`` logged
    on ``logger`` would meet, so that writing the record's line to it
    directly (:func:`log`) is what ``logger.log`` would do; else None.

    That is: ``logger`` is an enabled :class:`logging.Logger` without
    filters; the one handler on its way up (its own and its ancestors' until
    one does not propagate) is :func:`setup`'s, without filters, at or below
    ``level``, with one of this module's formatters; and the standard
    library's record factory and the methods a record goes through
    (``Logger.log`` ... ``Logger.callHandlers``, ``Handler.handle``) are
    the standard library's own, not wrapped (as error trackers wrap
    ``callHandlers``)."""
    if (type(logger) is not logging.Logger or logger.filters
            or not logger.isEnabledFor(level)):
        return None
    found = None
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            if found is not None:
                return None
            found = handler
        current = current.parent if current.propagate else None
    if (type(found) is not _Handler or found.filters or level < found.level
            or type(found.formatter) not in _FORMATTERS or not _hooks_standard()):
        return None
    return found


def log(logger: logging.Logger, level: int, message: Callable[[], str],
        fields: Callable[[], Mapping[str, Any]], exc: BaseException | None = None) -> None:
    """``logger.log(level, message(), exc_info=exc, extra={FIELDS: fields()})``
    (``exc`` adds its traceback, ``fields()`` are the record's structured
    fields), with the same effect; but when :func:`direct_handler` finds
    that only taskpack's handler would see the record, the line is handed
    to the handler without a :class:`logging.LogRecord` and made from these
    values when it is written (:class:`_Line`: on an event loop, when its
    iteration ends), ``fields`` called only if the format shows them (a
    run's line is logged on the event loop thread at the end of every run)."""
    handler = direct_handler(logger, level)
    if handler is None:
        logger.log(level, message(), exc_info=exc, extra={FIELDS: fields()})
        return
    line = _Line(time.time(), level, logger.name, message, fields, exc)
    with handler.lock:  # type: ignore[union-attr]
        handler.add(line)


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
