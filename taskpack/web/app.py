"""The dashboard's ASGI application (DESIGN §12).

:class:`Dashboard` answers every path under ``/_taskpack``:

* ``/_taskpack/`` — the page (``static/index.html``), ``/_taskpack/static/<file>``
  its scripts and styles. They carry no data, so a built server serves them
  to anyone; the dev server keeps its loopback policy for them too
  (``page_policy``);
* ``/_taskpack/api/...`` — JSON endpoints, behind the task API's own access
  policy (``TaskApi.policy``: loopback in dev, the bearer token in built
  servers). Modules add endpoints to the :class:`Router`
  (:func:`default_router` collects them: :mod:`taskpack.web.api`,
  :mod:`taskpack.web.live`); each handler gets a :class:`WebRequest` and
  returns an :class:`~taskpack.http.HttpResponse`, or, for streams, writes
  to the ASGI ``send`` itself. A store that is down is a 503, any other
  failure a logged 500, both in the API's JSON error shape.

Other paths go to ``fallback`` (the server's own routes). Every response of
the page carries a strict Content-Security-Policy (scripts and styles from
this origin only, no inline code) and ``no-store``. No cookies are set or
read: the page sends the token as a bearer header.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..http import (
    AccessPolicy,
    ASGIApp,
    BodyTooLarge,
    Disconnected,
    HttpRequest,
    HttpResponse,
    Receive,
    Scope,
    Send,
    TaskApi,
    _read_body,
    app_path,
    error_response,
    request_head,
    send_response,
)
from ..registry import Registry
from ..store import StoreError, StoreUnavailable
from .runs import RunSource, run_source

logger = logging.getLogger("taskpack.web")

PREFIX = "/_taskpack"
API_PREFIX = PREFIX + "/api/"
STATIC_PREFIX = PREFIX + "/static/"
STATIC_DIR = Path(__file__).resolve().parent / "static"
INDEX = "index.html"

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
}

PAGE_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}

ScheduleInfo = Callable[[], Sequence[Mapping[str, Any]]]
"""The manifest's schedules (``cron``, ``tasks`` and, when the builder
added them, ``description`` and ``deployed``), read at each request: the
dev server swaps its project on reload."""


@dataclass(frozen=True)
class WebRequest:
    """An admitted request to a JSON endpoint: the request (body read),
    the path's ``{placeholders}`` and the dashboard serving it."""

    http: HttpRequest
    params: Mapping[str, str]
    dashboard: Dashboard

    def arg(self, name: str) -> str | None:
        """The last value of query parameter ``name``; None when absent or blank."""
        values = [value for key, value in self.http.query if key == name and value != ""]
        return values[-1] if values else None


Handler = Callable[[WebRequest], Awaitable[HttpResponse]]
Streamer = Callable[[WebRequest, Receive, Send], Awaitable[None]]


@dataclass(frozen=True)
class _Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler | None = None
    streamer: Streamer | None = None


@dataclass
class Router:
    """JSON endpoints below ``/_taskpack/api/``: ``add("GET", "runs/{id}",
    handler)``. A placeholder matches one path segment."""

    routes: list[_Route] = field(default_factory=list)

    def add(self, method: str, path: str, handler: Handler) -> None:
        self.routes.append(_Route(method, _compile(path), handler=handler))

    def add_stream(self, path: str, streamer: Streamer) -> None:
        """A ``GET`` endpoint that writes its own response (server-sent events)."""
        self.routes.append(_Route("GET", _compile(path), streamer=streamer))

    def match(self, method: str, path: str) -> tuple[_Route | None, dict[str, str], list[str]]:
        """The route for ``method path`` with its parameters, and the methods
        the path allows (for a 405 when the route is None)."""
        allowed: list[str] = []
        for route in self.routes:
            found = route.pattern.fullmatch(path)
            if found is None:
                continue
            if route.method == method or (method == "HEAD" and route.method == "GET"):
                return route, found.groupdict(), allowed
            allowed.append(route.method)
        return None, {}, allowed


def _compile(path: str) -> re.Pattern[str]:
    parts = re.split(r"\{(\w+)\}", path)
    regex = "".join(re.escape(part) if i % 2 == 0 else f"(?P<{part}>[^/]+)"
                    for i, part in enumerate(parts))
    return re.compile(regex)


def default_router() -> Router:
    """Every endpoint of the dashboard."""
    from . import api, live

    router = Router()
    api.add_routes(router)
    live.add_routes(router)
    return router


class Dashboard:
    """The dashboard over ``api`` (its registry, access policy and runs).

    ``schedules`` gives the manifest's schedule entries (default: the
    registry's, without deployment details); ``page_policy`` guards the
    static page (None: served to anyone, as it holds no data);
    ``poll_interval`` is how often the live stream reads the store for
    runs and jobs of other processes.
    """

    def __init__(
        self,
        api: TaskApi,
        *,
        schedules: ScheduleInfo | None = None,
        page_policy: AccessPolicy | None = None,
        fallback: ASGIApp | None = None,
        dev: bool = False,
        poll_interval: float = 1.0,
        router: Router | None = None,
    ) -> None:
        self.api = api
        self.schedules = schedules or self._registry_schedules
        self.page_policy = page_policy
        self.fallback = fallback
        self.dev = dev
        self.poll_interval = poll_interval
        self.router = router or default_router()
        self._closed = threading.Event()
        self._static = {path.name: path for path in STATIC_DIR.iterdir() if path.is_file()}

    @property
    def registry(self) -> Registry:
        return self.api.registry

    @property
    def runs(self) -> RunSource:
        """Where runs are read from (the registry's store)."""
        return run_source(self.api.registry)

    def _registry_schedules(self) -> Sequence[Mapping[str, Any]]:
        return [{"cron": s.cron, "tasks": list(s.tasks)} for s in self.registry.schedules]

    def close(self) -> None:
        """End the live streams (call it when the server starts shutting
        down: open streams would otherwise hold a graceful shutdown for its
        whole grace period). Safe from a signal handler or another thread."""
        self._closed.set()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            if self.fallback is not None:
                await self.fallback(scope, receive, send)
            else:
                await _lifespan(receive, send)
            return
        path = app_path(scope) if kind == "http" else ""
        if kind != "http" or not (path == PREFIX or path.startswith(PREFIX + "/")):
            if self.fallback is not None:
                await self.fallback(scope, receive, send)
            elif kind == "http":
                await send_response(send, error_response(404, f"no route for {path}"))
            return
        request = request_head(scope)
        if path.startswith(API_PREFIX):
            await self._api(request, path[len(API_PREFIX):], receive, send)
        else:
            await send_response(send, self._page(request, scope))

    def _page(self, request: HttpRequest, scope: Scope) -> HttpResponse:
        if self.page_policy is not None:
            denied = self.page_policy(request)
            if denied is not None:
                return denied
        if request.method not in ("GET", "HEAD"):
            return error_response(405, f"method {request.method} is not allowed here",
                                  {"allow": "GET, HEAD"})
        if request.path == PREFIX:
            location = scope.get("root_path", "") + PREFIX + "/"
            return HttpResponse(308, {"location": location, **PAGE_HEADERS}, b"")
        name = INDEX if request.path == PREFIX + "/" else None
        if request.path.startswith(STATIC_PREFIX):
            name = request.path[len(STATIC_PREFIX):]
        file = self._static.get(name) if name else None
        if file is None:
            return error_response(404, f"no route for {request.path}")
        body = file.read_bytes()
        content_type = CONTENT_TYPES.get(file.suffix, "application/octet-stream")
        return HttpResponse(200, {"content-type": content_type, **PAGE_HEADERS},
                            b"" if request.method == "HEAD" else body)

    async def _api(self, request: HttpRequest, path: str, receive: Receive, send: Send) -> None:
        denied = self.api.policy(request)
        if denied is not None:
            await send_response(send, denied)
            return
        route, params, allowed = self.router.match(request.method, path)
        if route is None:
            if allowed:
                response = error_response(405, f"method {request.method} is not allowed here",
                                          {"allow": ", ".join(allowed)})
            else:
                response = error_response(404, f"no route for {request.path}")
            await send_response(send, response)
            return
        if route.streamer is not None:
            await route.streamer(WebRequest(request, params, self), receive, send)
            return
        try:
            body = await _read_body(receive, request.headers, self.api)
        except BodyTooLarge:
            too_large = self.api.too_large(self.api.body_limit + 1)
            assert too_large is not None
            await send_response(send, too_large)
            return
        except Disconnected:
            return
        assert route.handler is not None
        try:
            response = await route.handler(WebRequest(replace(request, body=body), params, self))
        except StoreUnavailable as exc:
            response = error_response(503, f"the store is unavailable: {exc}")
        except StoreError as exc:
            response = error_response(500, f"the store failed: {exc}")
        except Exception as exc:  # never a plain-text 500 or a dropped connection
            logger.exception("dashboard: %s %s failed", request.method, request.path)
            response = error_response(500, f"internal error: {type(exc).__name__}")
        await send_response(send, response)


async def _lifespan(receive: Receive, send: Send) -> None:
    """Acknowledge the lifespan events (the dashboard has no hooks of its own)."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
