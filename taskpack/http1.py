"""The bundles' HTTP/1.1 server: asyncio (uvloop) and the ``httptools``
parser (llhttp, as in Node and uvicorn), everything on the event loop's one
thread. :mod:`taskpack.serving` runs it for the ``server`` and
``server_cluster`` bundles; the ``asgi`` bundle never imports it.

Why its own server, measured (docs/benchmarks.md): with the bundle's app,
granian (Rust, an I/O thread beside the loop) and uvicorn (httptools, but an
ASGI exchange per request) each spent 1.3-1.5x the CPU per task API request
that this one does; the difference is the handoff between granian's thread
and the loop, and uvicorn's per-message dicts. On one core that is
throughput; on two (``server_cluster``) it is how far a second worker scales.

What a client gets:

* HTTP/1.0 and 1.1, keep-alive and pipelining (answers in request order;
  reading pauses while more than one request waits, or while answers wait
  for a client that does not read them), ``Expect:
  100-continue``, chunked request bodies;
* every request is read whole before it is handed over: a body over
  ``body_limit`` is a 413 at once from ``Content-Length``, or as soon as a
  chunked body passes it (the connection is then closed, the rest unread);
  a request head over :data:`MAX_HEAD` bytes is a 431; bytes that are not
  HTTP a 400; errors carry the task API's JSON error shape;
* answers of known length with ``content-length``, streamed ones chunked,
  each with ``date``; a ``HEAD`` answer without its body;
* a connection idle for :data:`KEEP_ALIVE` seconds is closed, one whose
  request has not fully arrived within :data:`REQUEST_TIMEOUT` seconds
  gets a 408 (slow clients cannot hold the server); a streamed answer waits
  for a slow reader instead of buffering (transport flow control);
* a client that goes before its request arrived whole has nothing run; one
  that goes while its request runs has the run finish (and recorded), its
  answer dropped, and streamed answers told (:meth:`Exchange.disconnected`).

:meth:`Server.shutdown` stops accepting, closes idle connections, lets
requests in progress finish (their answers say ``connection: close``) and
cancels what is still running after the grace period.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import httptools

from .http import error_response, over_the_limit

KEEP_ALIVE = 5.0
"""Seconds an idle keep-alive connection stays open (Node's default)."""
REQUEST_TIMEOUT = 60.0
"""Seconds a request's head and body may take to arrive (Node's
``headersTimeout``); then 408 and the connection is closed."""
MAX_HEAD = 16 * 1024
"""Largest request target plus headers in bytes (Node's default); 431 above."""
SWEEP_EVERY = 1.0
"""How often, in seconds, deadlines are checked and ``date`` renewed (more
often when a timeout is under four times this)."""

logger = logging.getLogger("taskpack.server")

_REASONS = {status: phrase.encode() for status, phrase in (
    (100, "Continue"), (101, "Switching Protocols"), (200, "OK"), (201, "Created"),
    (202, "Accepted"), (203, "Non-Authoritative Information"), (204, "No Content"),
    (205, "Reset Content"), (206, "Partial Content"), (300, "Multiple Choices"),
    (301, "Moved Permanently"), (302, "Found"), (303, "See Other"), (304, "Not Modified"),
    (307, "Temporary Redirect"), (308, "Permanent Redirect"), (400, "Bad Request"),
    (401, "Unauthorized"), (402, "Payment Required"), (403, "Forbidden"), (404, "Not Found"),
    (405, "Method Not Allowed"), (406, "Not Acceptable"), (408, "Request Timeout"),
    (409, "Conflict"), (410, "Gone"), (411, "Length Required"), (412, "Precondition Failed"),
    (413, "Content Too Large"), (414, "URI Too Long"), (415, "Unsupported Media Type"),
    (416, "Range Not Satisfiable"), (417, "Expectation Failed"), (421, "Misdirected Request"),
    (422, "Unprocessable Content"), (425, "Too Early"), (426, "Upgrade Required"),
    (428, "Precondition Required"), (429, "Too Many Requests"),
    (431, "Request Header Fields Too Large"), (500, "Internal Server Error"),
    (501, "Not Implemented"), (502, "Bad Gateway"), (503, "Service Unavailable"),
    (504, "Gateway Timeout"), (505, "HTTP Version Not Supported"))}
"""Reason phrases (RFC 9110 section 15; ``http.HTTPStatus`` costs a
millisecond of start-up): another status gets ``Unknown``, which clients
ignore as they ignore every phrase."""


class _Refused(Exception):
    """Raised by a parser callback that refused the request (stops the parser)."""


class Request:
    """One request, read whole: ``method`` (``"GET"``), ``target`` (the raw
    request target: path and query, percent-encoded), ``headers`` (names
    lower-case, values decoded as Latin-1, a repeated header's values
    joined with ``", "``), ``body`` and the ``client`` address
    (``(host, port)``, or None when unknown)."""

    __slots__ = (
        "body",
        "client",
        "headers",
        "http_version",
        "keep_alive",
        "method",
        "target",
    )

    def __init__(self, method: str, target: bytes, headers: dict[str, str],
                 body: bytes, client: tuple[str, int] | None, http_version: str,
                 keep_alive: bool) -> None:
        self.method = method
        self.target = target
        self.headers = headers
        self.body = body
        self.client = client
        self.http_version = http_version
        self.keep_alive = keep_alive  # whether the client keeps the connection after


Handler = Callable[[Request, "Exchange"], Awaitable[None]]
"""The application: answers one request through its :class:`Exchange`
(exactly one :meth:`~Exchange.respond`, or one :meth:`~Exchange.stream`)."""


class Exchange:
    """How a :data:`Handler` answers its request on the connection: at once
    (:meth:`respond`) or streamed (:meth:`stream`, then :meth:`write` and
    :meth:`end`). Whatever is sent after the client has gone is dropped."""

    __slots__ = ("_chunked", "_conn", "_head_only", "_keep_alive", "_streaming", "started")

    def __init__(self, conn: Connection, request: Request) -> None:
        self._conn = conn
        self._head_only = request.method == "HEAD"
        self._keep_alive = request.keep_alive
        self._chunked = request.http_version != "1.0"  # an HTTP/1.0 client reads to the close
        self.started = False
        self._streaming = False

    @property
    def finished(self) -> bool:
        """Whether the whole answer has been sent."""
        return self.started and not self._streaming

    def respond(self, status: int, headers: Headers, body: bytes) -> None:
        """Send the whole answer: ``headers`` without ``content-length``,
        which is added (with ``date``, and ``connection: close`` when the
        connection ends after it)."""
        if self.started:
            raise RuntimeError("this request has been answered")
        conn = self._conn
        keep = self._keep_alive and not conn.closing
        answer = _answer(status, headers, body, keep, self._head_only)
        self.started = True
        conn.write(answer)
        conn.answered(keep)

    def stream(self, status: int, headers: Headers) -> None:
        """Start a streamed answer (chunked: its length is not known; to an
        HTTP/1.0 client, as is, ended by the close)."""
        if self.started:
            raise RuntimeError("this request has been answered")
        chunked = self._chunked and not self._head_only
        head = b"%s%s%sconnection: close\r\n\r\n" % (
            _status_and_headers(status, headers),
            b"transfer-encoding: chunked\r\n" if chunked else b"", _date.line)
        self.started = self._streaming = True
        self._chunked = chunked
        self._conn.write(head)

    async def write(self, data: bytes) -> None:
        """Send one part of a streamed answer, waiting while the client
        reads slower than it is written."""
        if not self._streaming:
            raise RuntimeError("write() needs stream() first")
        if data and not self._head_only:
            conn = self._conn
            conn.write(b"%x\r\n%s\r\n" % (len(data), data) if self._chunked else data)
            await conn.drained()

    def end(self) -> None:
        """End a streamed answer; the connection then closes."""
        if self._streaming:
            self._streaming = False
            conn = self._conn
            if self._chunked:
                conn.write(b"0\r\n\r\n")
            conn.answered(False)

    async def disconnected(self) -> None:
        """Return once the client has gone."""
        await asyncio.shield(self._conn.gone)


def _answer(status: int, headers: Headers, body: bytes, keep: bool, head_only: bool) -> bytes:
    """A whole answer's bytes (its body left out when ``head_only``)."""
    return b"%scontent-length: %d\r\n%s%s%s" % (
        _status_and_headers(status, headers), len(body), _date.line,
        b"\r\n" if keep else b"connection: close\r\n\r\n", b"" if head_only else body)


Headers = Sequence[tuple[str, str]]
"""An answer's headers: (name, value) pairs, Latin-1 text. A tuple of them
is hashable: its status line and header lines are then made once
(:func:`_status_and_headers`)."""

_heads: dict[tuple[int, Headers], bytes] = {}
_MAX_HEADS = 256


def _status_and_headers(status: int, headers: Headers) -> bytes:
    """The status line and ``headers`` as bytes, remembered for up to
    :data:`_MAX_HEADS` tuples of headers (an API's few constant answers).
    ``ValueError`` for a header with a line break (it would split the
    answer), ``UnicodeEncodeError`` for one that is not Latin-1."""
    if type(headers) is tuple:
        head = _heads.get((status, headers))
        if head is not None:
            return head
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers)
    if lines.count("\r") != len(headers) or lines.count("\n") != len(headers):
        raise ValueError(f"a header holds a line break: {headers!r}")
    head = b"HTTP/1.1 %d %s\r\n%s" % (status, _REASONS.get(status, b"Unknown"),
                                      lines.encode("latin-1"))
    if type(headers) is tuple and len(_heads) < _MAX_HEADS:
        _heads[(status, headers)] = head
    return head


class _Date:
    """The ``date`` header line (RFC 9110 IMF-fixdate), renewed by the
    server's sweep. Written here: ``email.utils.formatdate`` costs 5 ms of
    start-up to import."""

    DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
    MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
              "Dec")
    line = b""

    def renew(self) -> None:
        now = time.gmtime()
        self.line = (f"date: {self.DAYS[now.tm_wday]}, {now.tm_mday:02d} "
                     f"{self.MONTHS[now.tm_mon - 1]} {now.tm_year} {now.tm_hour:02d}:"
                     f"{now.tm_min:02d}:{now.tm_sec:02d} GMT\r\n").encode()


_date = _Date()
_date.renew()


class Server:
    """Serves ``handler`` on listening sockets (:meth:`serve`); each
    request's body is at most ``body_limit`` bytes; ``keep_alive`` and
    ``request_timeout`` in seconds (see :data:`KEEP_ALIVE`,
    :data:`REQUEST_TIMEOUT`)."""

    def __init__(self, handler: Handler, *, body_limit: int, keep_alive: float = KEEP_ALIVE,
                 request_timeout: float = REQUEST_TIMEOUT) -> None:
        self.handler = handler
        self.body_limit = body_limit
        self.keep_alive = keep_alive
        self.request_timeout = request_timeout
        self._sweep_every = min(SWEEP_EVERY, keep_alive / 4, request_timeout / 4)
        self.connections: set[Connection] = set()
        self.closing = False
        self._servers: list[asyncio.AbstractServer] = []
        self._sweeper: asyncio.TimerHandle | None = None

    async def serve(self, sock: socket.socket, backlog: int) -> None:
        """Accept connections on the listening socket ``sock``."""
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: Connection(self, loop), sock=sock,
                                          backlog=backlog)
        self._servers.append(server)
        if self._sweeper is None:
            _date.renew()  # the line may be as old as the module
            self._sweeper = loop.call_later(self._sweep_every, self._sweep, loop)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        _date.renew()
        now = loop.time()
        for conn in list(self.connections):
            if conn.deadline and now >= conn.deadline:
                conn.expire()
        self._sweeper = loop.call_later(self._sweep_every, self._sweep, loop)

    async def shutdown(self, grace: float) -> None:
        """Stop accepting, close idle connections, wait up to ``grace``
        seconds for requests in progress, then cancel those still running
        and close every connection."""
        self.closing = True
        for server in self._servers:
            server.close()
        for conn in list(self.connections):
            conn.close_if_idle()
        deadline = time.monotonic() + grace
        while self.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        running = [conn.task for conn in self.connections if conn.task is not None]
        for task in running:
            task.cancel()
        if running:
            await asyncio.wait(running, timeout=1.0)
        for conn in list(self.connections):
            conn.abort()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for server in self._servers:
            await server.wait_closed()


class Connection(asyncio.Protocol):
    """One client connection (see the module docstring for its rules)."""

    def __init__(self, server: Server, loop: asyncio.AbstractEventLoop) -> None:
        self.server = server
        self.loop = loop
        self.transport: Any = None
        self.parser = httptools.HttpRequestParser(self)
        self.client: tuple[str, int] | None = None
        self.task: asyncio.Task[None] | None = None
        self.waiting: deque[Request] = deque()
        self.gone: asyncio.Future[None] = loop.create_future()
        self.deadline = 0.0  # loop time when this connection expires (0: never)
        self.closing = False  # no more requests: close once answered
        self.reading = True
        self.receiving = False  # a request has begun to arrive, not yet whole
        self._writable: asyncio.Future[None] | None = None
        # The request being read.
        self._url = b""
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._size = 0
        self._head_size = 0
        self._refused = False

    # -- asyncio.Protocol ------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self.client = (str(peer[0]), int(peer[1]))
        self.server.connections.add(self)
        self.deadline = self.loop.time() + self.server.keep_alive

    def data_received(self, data: bytes) -> None:
        if self._refused:  # the connection is closing: the rest is not read
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # Upgrades (websockets, h2c) are not offered: the request is
            # answered as plain HTTP/1.1 (RFC 9110 7.8), then the connection
            # closes, as the parser stops at the upgrade.
            self.closing = True
            if self.receiving:
                self.refuse(400, "protocol upgrades are not supported")
        except httptools.HttpParserError as exc:
            if not self._refused:  # else a callback refused the request
                self.refuse(400, f"malformed HTTP request: {exc}")

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self.closing = True
        self.waiting.clear()
        if not self.gone.done():
            self.gone.set_result(None)
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def pause_writing(self) -> None:
        if self._writable is None or self._writable.done():
            self._writable = self.loop.create_future()
        self._read_if_ready()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        if self.task is None and self.waiting:
            self.deadline = 0.0
            self.start(self.waiting.popleft())
        self._read_if_ready()

    def _read_if_ready(self) -> None:
        """Read on while at most one request waits and answers are not
        piling up unread by the client (its side of flow control: for a
        client that pipelines requests without reading the answers, the
        next request waits, and nothing more is read)."""
        ready = len(self.waiting) <= 1 and (self._writable is None or self._writable.done())
        if ready != self.reading and not self.transport.is_closing():
            self.reading = ready
            if ready:
                self.transport.resume_reading()
            else:
                self.transport.pause_reading()

    # -- httptools callbacks ---------------------------------------------

    # A callback that refuses the request raises: the parser stops there.

    def on_message_begin(self) -> None:
        self.receiving = True
        self._url = b""
        self._headers = {}
        self._body = []
        self._size = 0
        self._head_size = 0
        self.deadline = self.loop.time() + self.server.request_timeout

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._count_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers = self._headers
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
        self._count_head(len(name) + len(value))

    def _count_head(self, size: int) -> None:
        self._head_size += size
        if self._head_size > MAX_HEAD:
            self.refuse(431, f"request head is over {MAX_HEAD} bytes")
            raise _Refused

    def on_headers_complete(self) -> None:
        limit = self.server.body_limit
        declared = self._headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            self.refuse(413, over_the_limit(limit))
            raise _Refused
        expect = self._headers.get("expect")
        if expect is not None and expect.lower() == "100-continue":
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > self.server.body_limit:
            self.refuse(413, over_the_limit(self.server.body_limit))
            raise _Refused
        self._body.append(body)

    def on_message_complete(self) -> None:
        self.receiving = False
        parser = self.parser
        body = self._body
        request = Request(parser.get_method().decode("ascii"), self._url, self._headers,
                          body[0] if len(body) == 1 else b"".join(body), self.client,
                          parser.get_http_version(), parser.should_keep_alive())
        self.deadline = 0.0
        if self.task is None:
            self.start(request)
        else:
            self.waiting.append(request)
            if len(self.waiting) > 1:
                self._read_if_ready()

    # -- answering ---------------------------------------------------------

    def start(self, request: Request) -> None:
        exchange = Exchange(self, request)
        self.task = self.loop.create_task(self.run(request, exchange))

    async def run(self, request: Request, exchange: Exchange) -> None:
        """The handler's answer to ``request``. A handler that fails or ends
        without answering is a 500 (logged); one that fails mid-stream, or
        is cancelled (shutdown) before its answer is whole, has the
        connection closed."""
        try:
            await self.server.handler(request, exchange)
        except asyncio.CancelledError:
            if not exchange.finished:
                self.abort()
            raise
        except Exception:
            logger.exception("%s %r failed", request.method, request.target)
            if exchange.started:
                if not exchange.finished:
                    self.close()
                return
        if not exchange.started:
            self.task = None
            self.refuse(500, "internal error: the request got no answer")
        elif not exchange.finished:
            exchange.end()

    def answered(self, keep: bool) -> None:
        """The current request's answer has been written."""
        self.task = None
        if not keep or self.server.closing:
            self.close()
            return
        if not self.waiting:
            self.deadline = self.loop.time() + self.server.keep_alive
        elif self._writable is None or self._writable.done():
            self.start(self.waiting.popleft())
        else:  # the next starts once the client reads (resume_writing), if it does in time
            self.deadline = self.loop.time() + self.server.request_timeout
        if not self.reading:
            self._read_if_ready()

    def write(self, data: bytes) -> None:
        if not self.gone.done():
            self.transport.write(data)

    async def drained(self) -> None:
        if self._writable is not None and not self._writable.done():
            await self._writable

    def refuse(self, status: int, message: str) -> None:
        """Answer ``status`` with the API's error shape
        (:func:`taskpack.http.error_response`) and close (a request that
        cannot be read on)."""
        self._refused = True
        self.waiting.clear()
        if self.task is None:
            error = error_response(status, message)
            self.write(_answer(status, tuple(error.headers.items()), error.body, False, False))
            self.close()
        else:  # a pipelined request behind one in progress: close after it
            self.closing = True
            self.transport.pause_reading()

    def expire(self) -> None:
        """The deadline passed: idle (close) or a request still arriving (408)."""
        self.deadline = 0.0
        if self.task is not None:
            return
        if self.receiving:
            self.refuse(408, f"the request did not arrive within "
                             f"{self.server.request_timeout:g} s")
        else:
            self.close()

    def close_if_idle(self) -> None:
        self.closing = True
        if self.task is None and not self.receiving:
            self.close()

    def close(self) -> None:
        self.deadline = 0.0
        if not self.transport.is_closing():
            self.transport.close()

    def abort(self) -> None:
        self.deadline = 0.0
        self.transport.abort()
