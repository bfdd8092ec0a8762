"""The bundle's app on taskpack's HTTP/1.1 server (:mod:`taskpack.http1`):
how the ``server`` and ``server_cluster`` bundles answer requests
(:mod:`taskpack.serving`).

:class:`BundleHandler` answers the task API's paths (runs, listings,
histories, the job API) itself, through the same core as the ASGI adapter
(:meth:`TaskApi.route`, :meth:`TaskApi.admit`, :func:`taskpack.http.dispatch`):
the request arrives whole and the answer leaves in one write, where ASGI
takes a dict per message and an await per send. Every other path
(``/_health``, the dashboard and its live stream) goes to the bundle's ASGI
app through :func:`asgi_bridge`, so those routes are written once, for ASGI.

What a client sees is the same either way: the API's JSON answers, the 413
for a body over the API's ``body_limit`` (the server's own limit, before
any of it is handed over), nothing run for a client gone before its body
arrived, and one ``taskpack.access`` line per request when
``TASKPACK_ACCESS_LOG`` asks for it. The server has no lifespan:
:mod:`taskpack.serving` runs the bundle's startup and shutdown around it.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qsl, unquote_to_bytes

from .http import (
    JSON_HEADERS,
    ASGIApp,
    HttpRequest,
    HttpResponse,
    Message,
    TaskApi,
    dispatch,
    log_access,
)
from .http1 import Exchange, Headers, Request
from .logs import access_log_enabled

_JSON_HEADER_PAIRS = tuple(JSON_HEADERS.items())


class BundleHandler:
    """``app`` (the bundle's ASGI application, whose task API is ``api``) as
    a :data:`taskpack.http1.Handler`. ``access_log`` (default:
    ``TASKPACK_ACCESS_LOG``) logs the API's requests; the ASGI app logs its
    own."""

    def __init__(self, api: TaskApi, app: ASGIApp, *, access_log: bool | None = None) -> None:
        self.api = api
        self.app = app
        self.access_log = access_log_enabled() if access_log is None else access_log

    async def __call__(self, request: Request, exchange: Exchange) -> None:
        raw_path, _, raw_query = request.target.partition(b"?")
        path = decode_path(raw_path)
        api = self.api
        route = api.route(path)
        if route is None:
            await asgi_bridge(self.app, request, exchange, path, raw_path, raw_query)
            return
        started = time.perf_counter() if self.access_log else 0.0
        query = raw_query.decode("latin-1")
        client = request.client[0] if request.client is not None else None
        http_request = HttpRequest(
            request.method, path, parse_qsl(query, keep_blank_values=True) if query else [],
            request.headers, request.body, client)
        response = api.admit(route, http_request) or await dispatch(api, route, http_request)
        exchange.respond(response.status, response_headers(response), response.body)
        if self.access_log:
            log_access(request.method, path, query, response.status, started, client)


def decode_path(raw: bytes) -> str:
    """A request path percent-decoded, as ASGI's ``path`` (UTF-8; bytes
    that are not UTF-8 become U+FFFD)."""
    if b"%" in raw:
        raw = unquote_to_bytes(raw)
    return raw.decode("utf-8", "replace")


def response_headers(response: HttpResponse) -> Headers:
    """``response``'s headers as pairs (the server adds ``content-length``):
    a tuple for the JSON answers, whose head the server then makes once."""
    if response.headers is JSON_HEADERS:
        return _JSON_HEADER_PAIRS
    return list(response.headers.items())


async def asgi_bridge(app: ASGIApp, request: Request, exchange: Exchange, path: str,
                      raw_path: bytes, raw_query: bytes) -> None:
    """Answer ``request`` with the ASGI ``app``: its ``receive`` gives the
    body (read whole by the server), then waits for the client to go
    (``http.disconnect``); its ``send`` answers at once, or streams when
    the body comes in parts (``more_body``: the dashboard's live stream;
    parts sent after the client has gone are dropped, as ASGI servers do).
    An app that returns without starting a response gets a 500, as from an
    ASGI server."""
    body_sent = False

    async def receive() -> Message:
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": request.body, "more_body": False}
        await exchange.disconnected()
        return {"type": "http.disconnect"}

    status = 0
    headers: list[tuple[str, str]] = []

    async def send(message: Message) -> None:
        nonlocal status, headers
        kind = message["type"]
        if kind == "http.response.start":
            status = message["status"]
            headers = [(name.decode("latin-1"), value.decode("latin-1"))
                       for name, value in message.get("headers", ())
                       if name.lower() != b"content-length"]
        elif kind == "http.response.body" and status:
            chunk: bytes = message.get("body", b"")
            more = message.get("more_body", False)
            if not exchange.started and not more:
                exchange.respond(status, headers, chunk)
                return
            if not exchange.started:
                exchange.stream(status, headers)
            await exchange.write(chunk)
            if not more:
                exchange.end()

    await app(asgi_scope(request, path, raw_path, raw_query), receive, send)
    if exchange.started:
        return
    if status:  # started, never finished: what was started is sent
        exchange.respond(status, headers, b"")
    else:
        exchange.respond(500, [("content-type", "text/plain; charset=utf-8")],
                         b"Internal Server Error")


def asgi_scope(request: Request, path: str, raw_path: bytes, raw_query: bytes,
               ) -> dict[str, Any]:
    """The ASGI HTTP scope of ``request``."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": request.http_version,
        "method": request.method,
        "scheme": "http",
        "path": path,
        "raw_path": raw_path,
        "query_string": raw_query,
        "root_path": "",
        "headers": [(name.encode("latin-1"), value.encode("latin-1"))
                    for name, value in request.headers.items()],
        "client": request.client,
        "server": None,
    }
