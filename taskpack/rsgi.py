"""The bundle's app over RSGI, granian's native interface: how the
``server`` and ``server_cluster`` bundles are served (:mod:`taskpack.serving`).

:class:`RSGIApp` answers the task API's paths (runs, listings, histories,
the job API) itself, through the same core as the ASGI adapter
(:meth:`TaskApi.route`, :meth:`TaskApi.admit`, :func:`taskpack.http.dispatch`):
the request's head and body arrive as two calls into granian and the answer
leaves as one, where ASGI takes a dict per message and an await per send.
Measured on the task API (docs/benchmarks.md), that is the larger part of
the server's own cost per request. Every other path (``/_health``, the
dashboard and its live stream) goes to the bundle's ASGI app through
:func:`asgi_bridge`, so those routes are written once, for ASGI.

What a client sees is the same either way: the API's JSON answers with a
``content-length``, the 413 before a body over the limit is read (from
``Content-Length``, or while reading a chunked body), no answer to a client
gone before its body arrived, and one ``taskpack.access`` line per request
when ``TASKPACK_ACCESS_LOG`` asks for it. RSGI has no lifespan:
:mod:`taskpack.serving` runs the bundle's startup and shutdown around serving.

Imported only by :mod:`taskpack.serving`: it needs granian (pinned in the
bundles' ``requirements.txt``) for the exception a closed connection raises,
from granian's Rust extension alone (:func:`granian_worker_module`).
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import AsyncIterator
from typing import Any, Protocol
from urllib.parse import parse_qsl

from .http import (
    JSON_HEADERS,
    ASGIApp,
    BodyTooLarge,
    HttpRequest,
    HttpResponse,
    Message,
    TaskApi,
    collect_body,
    dispatch,
    log_access,
    lower_headers,
)
from .logs import access_log_enabled


def granian_worker_module() -> Any:
    """granian's Rust extension (``granian._granian``: the HTTP worker, its
    socket holder, stop signal and RSGI protocol) without granian's Python
    package, whose import runs its process manager's imports
    (multiprocessing, tempfile, ``logging.config``, watchfiles, dotenv...):
    measured here as a tenth of the ``server`` bundle's cold start, none of
    it used by an embedded worker. The module is registered under its own
    name, so a later ``import granian`` finds and uses it."""
    module = sys.modules.get("granian._granian")
    if module is not None:
        return module
    import importlib.machinery
    import importlib.util

    package = importlib.machinery.PathFinder.find_spec("granian")
    locations = package.submodule_search_locations if package is not None else None
    spec = importlib.machinery.PathFinder.find_spec("granian._granian", locations)
    if spec is None or spec.loader is None:
        raise ImportError("granian is not installed", name="granian")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


ProtocolClosed: type[Exception] = granian_worker_module().RSGIProtocolClosed

_JSON_HEADER_PAIRS = [(name, value) for name, value in JSON_HEADERS.items()]


class Headers(Protocol):
    """RSGI request headers: lower-case names, repeated names kept."""

    def items(self) -> list[tuple[str, str]]: ...


class Scope(Protocol):
    """What :class:`RSGIApp` reads of an RSGI HTTP scope."""

    proto: str
    http_version: str
    method: str
    scheme: str
    path: str  # percent-decoded, as ASGI's
    query_string: str  # raw
    client: str  # "host:port"
    server: str

    @property
    def headers(self) -> Headers: ...


class Stream(Protocol):
    async def send_bytes(self, data: bytes) -> None: ...


class HTTPProtocol(Protocol):
    """The RSGI HTTP protocol object: the body in, one response out."""

    async def __call__(self) -> bytes: ...

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def client_disconnect(self) -> None: ...

    def response_bytes(self, status: int, headers: list[tuple[str, str]],
                       body: bytes) -> None: ...

    def response_stream(self, status: int, headers: list[tuple[str, str]]) -> Stream: ...


class RSGIApp:
    """``app`` (the bundle's ASGI application, whose task API is ``api``)
    as an RSGI application. ``access_log`` (default: ``TASKPACK_ACCESS_LOG``)
    logs the API's requests; the ASGI app logs its own."""

    def __init__(self, api: TaskApi, app: ASGIApp, *, access_log: bool | None = None) -> None:
        self.api = api
        self.app = app
        self.access_log = access_log_enabled() if access_log is None else access_log

    async def __call__(self, scope: Scope, proto: HTTPProtocol) -> None:
        api = self.api
        path = scope.path
        route = api.route(path)
        if route is None:
            await asgi_bridge(self.app, scope, proto)
            return
        started = time.perf_counter() if self.access_log else 0.0
        query = scope.query_string
        request = HttpRequest(
            scope.method, path, parse_qsl(query, keep_blank_values=True) if query else [],
            lower_headers(scope.headers.items()), b"", client_host(scope.client))
        response = api.admit(route, request)
        if response is None:
            try:
                body = await read_body(proto, request.headers.get("content-length"),
                                       api.body_limit)
            except BodyTooLarge:
                response = api.too_large(api.body_limit + 1)
            except ProtocolClosed:
                if self.access_log:
                    log_access(scope.method, path, query, 0, started, request.client_host)
                return
            else:
                response = await dispatch(api, route, HttpRequest(
                    request.method, path, request.query, request.headers, body,
                    request.client_host))
        assert response is not None
        proto.response_bytes(response.status, response_headers(response), response.body)
        if self.access_log:
            log_access(scope.method, path, query, response.status, started,
                       request.client_host)


async def read_body(proto: HTTPProtocol, declared: str | None, limit: int) -> bytes:
    """The request body, at most ``limit`` bytes (:func:`taskpack.http.collect_body`:
    :class:`BodyTooLarge` above it, at once from ``Content-Length``, else
    while reading), or :class:`ProtocolClosed` when the client goes before it
    all arrived. A declared length within the limit is read in one call."""
    if declared is not None and declared.isdigit() and int(declared) <= limit:
        return await proto()
    return await collect_body(proto, declared, limit)


def response_headers(response: HttpResponse) -> list[tuple[str, str]]:
    """``response``'s headers as RSGI pairs (granian adds ``content-length``)."""
    if response.headers is JSON_HEADERS:
        return _JSON_HEADER_PAIRS
    return list(response.headers.items())


def client_host(client: str) -> str | None:
    """The host of an RSGI ``client`` (``"127.0.0.1:5123"``, ``"[::1]:5123"``)."""
    address = split_address(client)
    return address[0] if address is not None else None


def split_address(address: str) -> tuple[str, int] | None:
    """An RSGI address (``client``, ``server``) as ASGI's ``(host, port)``."""
    host, _, port = address.rpartition(":")
    return (host.strip("[]"), int(port)) if host and port.isdigit() else None


async def asgi_bridge(app: ASGIApp, scope: Scope, proto: HTTPProtocol) -> None:
    """Serve one RSGI HTTP request with the ASGI ``app``: its ``receive``
    gives the body as it arrives (so the app's own body limit holds while
    it streams), then waits for the client to go (``http.disconnect``); its
    ``send`` answers at once, or streams when the body comes in parts
    (``more_body``: the dashboard's live stream; parts sent after the client
    has gone are dropped, as ASGI servers do). An app that returns without
    starting a response gets a 500, as from an ASGI server."""
    chunks = aiter(proto)
    read = False

    async def receive() -> Message:
        nonlocal read
        if not read:
            try:
                return {"type": "http.request", "body": await anext(chunks), "more_body": True}
            except StopAsyncIteration:
                read = True
                return {"type": "http.request", "body": b"", "more_body": False}
            except ProtocolClosed:
                read = True
                return {"type": "http.disconnect"}
        await proto.client_disconnect()
        return {"type": "http.disconnect"}

    status = 0
    headers: list[tuple[str, str]] = []
    stream: Stream | None = None

    async def send(message: Message) -> None:
        nonlocal status, headers, stream
        kind = message["type"]
        if kind == "http.response.start":
            status = message["status"]
            headers = [(name.decode("latin-1"), value.decode("latin-1"))
                       for name, value in message.get("headers", ())]
        elif kind == "http.response.body":
            chunk: bytes = message.get("body", b"")
            if stream is None and not message.get("more_body", False):
                proto.response_bytes(status, headers, chunk)
                status = -1  # answered
                return
            if stream is None:
                stream = proto.response_stream(status, headers)
                status = -1
            if chunk:
                with contextlib.suppress(ProtocolClosed):  # gone: as ASGI servers, ignore
                    await stream.send_bytes(chunk)

    await app(asgi_scope(scope), receive, send)
    if status > 0:  # started, never finished: what was started is sent
        proto.response_bytes(status, headers, b"")
    elif status == 0:
        proto.response_bytes(500, [("content-type", "text/plain; charset=utf-8")],
                             b"Internal Server Error")


def asgi_scope(scope: Scope) -> dict[str, Any]:
    """The ASGI HTTP scope of an RSGI one."""
    query = scope.query_string
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": scope.http_version,
        "method": scope.method,
        "scheme": scope.scheme,
        "path": scope.path,
        "query_string": query.encode("latin-1", "replace"),
        "root_path": "",
        "headers": [(name.encode("latin-1"), value.encode("latin-1"))
                    for name, value in scope.headers.items()],
        "client": split_address(scope.client),
        "server": split_address(scope.server),
    }
