"""The HTTP task API (Nitro-compatible paths), written once for every platform.

Two layers:

* a pure core: :class:`HttpRequest` in, :class:`HttpResponse` out, through
  :func:`handle`. It knows nothing about servers, so the Cloudflare Worker and
  the Vercel function convert their platform request into an
  :class:`HttpRequest` (:meth:`HttpRequest.from_url` does the URL part) and
  call :func:`handle` unchanged;
* :func:`asgi_app`: an ASGI 3 application over the core, used by the dev
  server and the server presets (body limit enforced while streaming,
  lifespan hooks for the scheduler).

Routes (DESIGN §5):

* ``GET /_nitro/tasks`` lists tasks with descriptions and the schedules;
* ``GET|POST /_nitro/tasks/{name}`` runs a task. Its payload is the query
  string (a repeated key becomes a list of strings, a single key a string)
  overlaid by the ``"payload"`` object of a JSON body (body keys win);
* ``GET /_nitro/tasks/{name}/runs?limit=N`` lists the task's recorded runs
  (task names never contain ``/``, so this cannot shadow a task);
* under ``/_taskpack/``, the routes of :class:`Extension` objects given to
  the :class:`TaskApi` (the job API of :mod:`taskpack.web.jobs`), under the
  same access policy and body limit.

Errors are JSON ``{"error": true, "statusCode": n, "message": str}``. Who may
call the API is decided by an :data:`AccessPolicy` that every :class:`TaskApi`
must be given: :func:`loopback_only` (dev) or :func:`bearer_token`
(production). There is no open default.

Standard library only: this module is bundled into every deploy output.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import ipaddress
import json
import logging
import re
import time
import traceback
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
    MutableMapping,
)
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

from .errors import TaskAbortedError, TaskError, TaskNotFoundError
from .jsonenc import encoder
from .logs import ACCESS_LOGGER, FIELDS, access_log_enabled, logfmt
from .registry import Registry
from .task import TaskContext

logger = logging.getLogger("taskpack.http")
access_logger = logging.getLogger(ACCESS_LOGGER)

PREFIX = "/_nitro/tasks"
DEFAULT_BODY_LIMIT = 1024 * 1024
JSON_TYPE = "application/json; charset=utf-8"
JSON_HEADERS: Mapping[str, str] = MappingProxyType({"content-type": JSON_TYPE})
"""The headers of a plain JSON response (shared: :func:`send_response`
sends them pre-encoded)."""
_JSON_HEADER = (b"content-type", JSON_TYPE.encode("latin-1"))

RUN_METHODS = ("GET", "POST")
RUNS_SUFFIX = "/runs"
DEFAULT_RUNS_LIMIT = 20
MAX_RUNS_LIMIT = 1000
STORE_READ_TIMEOUT = 5.0
LIST_METHODS = ("GET",)


# -- request and response -----------------------------------------------------


@dataclass(frozen=True)
class HttpRequest:
    """A request as the core sees it.

    ``path`` is percent-decoded (the ASGI ``path`` convention); ``query`` the
    decoded key/value pairs in order, blank values kept; ``headers`` has
    lower-case keys (repeated headers joined with ``", "``); ``client_host``
    is the peer address when the platform knows it.
    """

    method: str
    path: str
    query: list[tuple[str, str]] = field(default_factory=list)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    client_host: str | None = None

    @classmethod
    def from_url(
        cls,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        client_host: str | None = None,
    ) -> HttpRequest:
        """A request from a full URL (or a path with a query string), as
        platforms that hand over ``request.url`` have it. Header names are
        lower-cased here."""
        parts = urlsplit(url)
        return cls(
            method=method.upper(),
            path=unquote(parts.path or "/"),
            query=parse_qsl(parts.query, keep_blank_values=True),
            headers=lower_headers(headers.items() if isinstance(headers, Mapping) else headers),
            body=body,
            client_host=client_host,
        )


@dataclass(frozen=True)
class HttpResponse:
    """A complete response; ``headers`` are lower-case names."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON (for tests and clients)."""
        return json.loads(self.body)


def lower_headers(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Header pairs as a dict with lower-case names; repeats joined by ``", "``."""
    headers: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


def dumps(data: Any) -> str:
    """``data`` as JSON text that always encodes to UTF-8: non-ASCII kept as
    is, but a string holding a lone surrogate (a file name from
    ``os.listdir`` that is not UTF-8, a string cut mid-emoji) makes the
    whole text ASCII with ``\\uXXXX`` escapes, which JSON parsers read back
    exactly. ``TypeError``/``ValueError`` if it is not JSON-serialisable
    (NaN and infinities included: they are not JSON)."""
    text = _ENCODE(data)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return _ENCODE_ASCII(data)
    return text


# One encoder each, made once (:mod:`taskpack.jsonenc`): the task API's hot
# path would otherwise pay for building one per request.
_ENCODE = encoder(ensure_ascii=False, allow_nan=False)
_ENCODE_ASCII = encoder(allow_nan=False)


def json_response(status: int, data: Any, headers: Mapping[str, str] | None = None) -> HttpResponse:
    """``data`` as a JSON response (see :func:`dumps`)."""
    body = dumps(data).encode("utf-8")
    return HttpResponse(status, {"content-type": JSON_TYPE, **headers} if headers else
                        JSON_HEADERS, body)


def dump_result(name: str, result: Any) -> str:
    """A task's result as JSON text (:func:`dumps`), as the API sends it and
    the CLI prints it; a :class:`TaskError` (500) naming the task when it is
    not JSON."""
    try:
        return dumps(result)
    except (TypeError, ValueError, RecursionError) as exc:
        raise TaskError(
            f"task `{name}` returned a value that is not JSON-serialisable: {exc}"
        ) from None


def error_response(
    status: int, message: str, headers: Mapping[str, str] | None = None, **extra: Any
) -> HttpResponse:
    """The API's error shape: ``{"error": true, "statusCode": n, "message": ...}``."""
    return json_response(
        status, {"error": True, "statusCode": status, "message": message, **extra}, headers
    )


def over_the_limit(limit: int) -> str:
    """What a 413 says (the task API's, and its server's: :mod:`taskpack.http1`)."""
    return f"request body is over the limit of {limit} bytes"


def api_off(table: str) -> HttpResponse:
    """The 404 of a task API that the config leaves off, on every platform:
    it names the ``[table] tasks_api`` key that turns it on."""
    return error_response(404, f"the task API is off; enable it with [{table}] tasks_api = true")


# -- access policies ----------------------------------------------------------


class AccessPolicy(Protocol):
    """Decides whether a request may use the API: ``None`` to admit it, or
    the response refusing it. Called before the body is read."""

    def __call__(self, request: HttpRequest, /) -> HttpResponse | None: ...


_LOOPBACK_NAMES = ("localhost", "localhost.")


def is_loopback_address(host: str) -> bool:
    """Whether ``host`` is a loopback IP address (``127.0.0.0/8``, ``::1``,
    IPv4-mapped loopback); ``False`` for names and wildcard addresses."""
    return _is_loopback_ip(host)


@functools.lru_cache(maxsize=256)
def _is_loopback_ip(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


@functools.lru_cache(maxsize=256)
def _is_loopback_name(host: str) -> bool:
    host = host.lower()
    return host in _LOOPBACK_NAMES or host.endswith(".localhost") or _is_loopback_ip(host)


def _host_of(authority: str) -> str:
    """``localhost`` from ``localhost:3000``, ``::1`` from ``[::1]:3000``."""
    if authority.startswith("["):
        return authority[1 : authority.find("]")] if "]" in authority else authority
    return authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority


def loopback_only() -> AccessPolicy:
    """Admit clients on this machine only (``127.0.0.0/8`` and ``::1``): the
    dev server's policy. Refusals are 403.

    Because a web page in the developer's browser is also "on this machine",
    the request must also be addressed to a loopback name (``Host``; this
    defeats DNS rebinding), and requests from browsers are held to
    :func:`browser_rule`: no cross-site or same-site requests, and no task
    run without a JSON POST (which a page cannot send to another origin
    without a CORS preflight that this server never grants).
    """

    def policy(request: HttpRequest) -> HttpResponse | None:
        if request.client_host is None or not _is_loopback_ip(request.client_host):
            return error_response(403, "the task API answers loopback clients only")
        host = request.headers.get("host")
        if host is not None and not _is_loopback_name(_host_of(host)):
            return error_response(403, f"the task API answers loopback hosts only, not {host!r}")
        return browser_rule(request)

    return policy


SIMPLE_CONTENT_TYPES = frozenset(
    {"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"}
)
"""Content types a cross-origin form or ``no-cors`` fetch may send."""


def browser_rule(request: HttpRequest) -> HttpResponse | None:
    """What the dev server asks of requests from browsers (403 otherwise).

    * ``Sec-Fetch-Site: cross-site`` or ``same-site`` (another origin; a page
      on another port of localhost is same-site) is refused, whatever the
      path: only the server's own pages (``same-origin``) and the address
      bar (``none``) may call it.
    * An ``Origin`` that is not a loopback origin is refused (browsers
      without ``Sec-Fetch-*`` still send it on POSTs).
    * A request that runs a task from a browser (any ``Sec-Fetch-*`` or
      ``Origin`` header) must be a POST with a JSON content type: an
      ``<img src>``, a link, a form or a ``no-cors`` fetch cannot run one.

    ``curl`` and the CLI send none of these headers and are not affected.
    """
    headers = request.headers
    site = headers.get("sec-fetch-site", "").strip().lower()
    if site in ("cross-site", "same-site"):
        return error_response(403, f"{site} requests from browsers are refused")
    origin = headers.get("origin")
    if origin is not None and not _is_loopback_name(urlsplit(origin).hostname or ""):
        return error_response(403, f"cross-origin requests from {origin!r} are refused")
    browser = origin is not None or any(name.startswith("sec-fetch-") for name in headers)
    route = match_route(request.path)
    if not browser or route is None or not route.runs:
        return None
    kind = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if request.method != "POST" or kind in SIMPLE_CONTENT_TYPES or not kind:
        return error_response(
            403, "from a browser, a task runs only on a POST with Content-Type: "
            "application/json (so no other page can run it)")
    return None


TASKS_TOKEN_ENV = "TASKPACK_TASKS_TOKEN"
"""The variable (or Worker secret) that holds the task API's bearer token,
on every platform."""


def configured_secret(value: object) -> str | None:
    """A secret as configured (an environment variable, a Worker secret):
    surrounding whitespace removed (a trailing newline from a secrets file
    never counts); ``None`` when it is unset, not a string or blank, which
    every caller treats as "not set" and refuses to serve. The one rule for
    ``TASKPACK_TASKS_TOKEN`` and ``CRON_SECRET`` on every platform."""
    if not isinstance(value, str):
        return None
    return value.strip() or None


def bearer_token(token: str) -> AccessPolicy:
    """Admit requests with ``Authorization: Bearer <token>`` (constant-time
    compare); 401 otherwise. The token is taken as :func:`configured_secret`
    reads it (stripped); ``ValueError`` for an empty one, so a missing
    secret can never mean an open API."""
    secret = configured_secret(token)
    if secret is None:
        raise ValueError("bearer_token: the token must be a non-empty string")
    expected = secret.encode("utf-8")
    challenge = {"www-authenticate": 'Bearer realm="taskpack"'}

    def policy(request: HttpRequest) -> HttpResponse | None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return error_response(401, "missing bearer token", challenge)
        if not hmac.compare_digest(given.strip().encode("utf-8"), expected):
            return error_response(401, "invalid bearer token", challenge)
        return None

    return policy


def secret_bearer_token(read_secret: Callable[[], str | None], unset: str) -> AccessPolicy:
    """:func:`bearer_token` against a secret read per request (a platform's
    environment or binding, so a rotated secret applies at once). While the
    secret is unset or blank every request is answered 500 with the
    message ``unset``: the API fails closed, never open."""

    def policy(request: HttpRequest) -> HttpResponse | None:
        secret = configured_secret(read_secret())
        if secret is None:
            logger.error("task API request refused: %s", unset)
            return error_response(500, unset)
        return bearer_token(secret)(request)

    return policy


# -- the API ------------------------------------------------------------------

TASKPACK_PREFIX = "/_taskpack"
ROUTES_KEPT = 1024


class Extension(Protocol):
    """More routes under the task API's access policy: every path equal to
    ``prefix`` or below it (``prefix`` starts with :data:`TASKPACK_PREFIX`)
    goes to :meth:`handle`, with the whole body read, once the policy has
    admitted the request. ``methods`` are the methods of those paths (others
    are a 405 before the body is read)."""

    prefix: str
    methods: tuple[str, ...]

    async def handle(self, request: HttpRequest) -> HttpResponse: ...



class TaskApi:
    """The task API over a registry.

    ``registry`` may be replaced at any time (the dev server does on reload);
    each request uses the registry current when it arrives. ``policy`` is
    required. ``dev`` adds tracebacks to 500 responses. ``body_limit`` is the
    largest accepted request body in bytes (413 above it). ``context`` makes
    the :class:`TaskContext` of each run (platform entries add their objects
    and ``wait_until`` hook); by default a plain ``trigger="http"`` context.
    ``last_runs`` adds each task's newest run to the listing (``"lastRun"``,
    a run record or ``null``): the dev server's listing. ``extensions`` add
    routes under ``/_taskpack/`` (see :class:`Extension`).
    """

    def __init__(
        self,
        registry: Registry,
        *,
        policy: AccessPolicy,
        dev: bool = False,
        body_limit: int = DEFAULT_BODY_LIMIT,
        context: Callable[[], TaskContext] | None = None,
        last_runs: bool = False,
        extensions: Iterable[Extension] = (),
    ) -> None:
        if not callable(policy):
            raise TypeError("TaskApi: policy must be an access policy (see loopback_only)")
        if body_limit < 0:
            raise ValueError("TaskApi: body_limit must not be negative")
        self.registry = registry
        self.policy = policy
        self.dev = dev
        self.body_limit = body_limit
        self.context = context or _http_context
        self.last_runs = last_runs
        self.extensions = tuple(extensions)
        self._routes: dict[str, Route | None] = {}

    def route(self, path: str) -> Route | None:
        """The API route for ``path``, or ``None`` when the path is not the API's
        (remembered for the last :data:`ROUTES_KEPT` paths: a server answers
        the same few paths over and over)."""
        try:
            return self._routes[path]
        except KeyError:
            pass
        route = self._match(path)
        if len(self._routes) >= ROUTES_KEPT:
            self._routes.clear()
        self._routes[path] = route
        return route

    def _match(self, path: str) -> Route | None:
        for extension in self.extensions:
            if path == extension.prefix or path.startswith(extension.prefix + "/"):
                return Route(None, extension=extension)
        return match_route(path)

    def admit(self, route: Route, request: HttpRequest) -> HttpResponse | None:
        """Checks that need no body: the access policy, then the method.
        ``None`` to go on, else the response to send."""
        denied = self.policy(request)
        if denied is not None:
            logger.warning("%s %s refused: %d", request.method, request.path, denied.status)
            return denied
        allowed = route.methods
        if request.method not in allowed:
            return error_response(
                405, f"method {request.method} is not allowed here", {"allow": ", ".join(allowed)}
            )
        return None

    def too_large(self, size: int) -> HttpResponse | None:
        """The 413 response when a body of ``size`` bytes is over the limit."""
        if size <= self.body_limit:
            return None
        return error_response(413, over_the_limit(self.body_limit))

    async def listing(self) -> HttpResponse:
        """``GET /_nitro/tasks``: tasks with descriptions (and, with
        ``last_runs``, their newest run), and the schedules."""
        registry = self.registry
        if self.last_runs:
            return json_response(200, await registry.listing_with_last_runs())
        return json_response(200, registry.listing())

    async def run(self, name: str, request: HttpRequest) -> HttpResponse:
        """Run ``name`` with the request's payload; every outcome is a response.

        A task that raises is a 500 with the exception's message; in dev the
        body also names the exception class (``exception``) and carries the
        ``traceback``."""
        try:
            payload = request_payload(request.query, request.body)
        except PayloadError as exc:
            return error_response(400, str(exc))
        try:
            result = await self.registry.run(name, payload, self.context())
        except TaskError as exc:
            return error_response(exc.status_code, exc.message, **exc.details())
        except Exception as exc:  # logged with its traceback by the run's line
            return self.failure(exc)
        try:
            body = dump_result(name, result)
        except TaskError as exc:
            return error_response(exc.status_code, exc.message)
        return HttpResponse(200, JSON_HEADERS, body.encode("utf-8"))

    def failure(self, exc: Exception, message: str | None = None) -> HttpResponse:
        """The 500 for ``exc``: its message (or ``message``); in dev also the
        exception class (``exception``, what the task raised for a
        :class:`TaskAbortedError`) and the ``traceback``."""
        text = message or str(exc) or type(exc).__name__
        if not self.dev:
            return error_response(500, text)
        shown = exc.original if isinstance(exc, TaskAbortedError) else exc
        trace = "".join(traceback.format_exception(exc))
        return error_response(500, text, exception=type(shown).__name__, traceback=trace)

    async def runs(self, name: str, request: HttpRequest) -> HttpResponse:
        """``GET /_nitro/tasks/{name}/runs?limit=N&cursor=C``: the task's
        recorded runs, newest first (``{"runs": [...], "next_cursor": ...}``,
        see :class:`taskpack.RunRecord`; ``next_cursor`` is the ``cursor`` of
        the next, older page, ``null`` on the last). ``limit`` defaults to 20
        and must be 1 to 1000, and a cursor must be one this API gave (else
        400); an unknown task is 404; a store that cannot be read within
        :data:`STORE_READ_TIMEOUT` seconds is 503."""
        values = [value for key, value in request.query if key == "limit"]
        limit = DEFAULT_RUNS_LIMIT
        if values:
            try:
                limit = int(values[-1])
            except ValueError:
                limit = 0
            if not 1 <= limit <= MAX_RUNS_LIMIT:
                return error_response(
                    400, f"limit must be an integer from 1 to {MAX_RUNS_LIMIT}, got {values[-1]!r}"
                )
        if name not in self.registry:
            return error_response(404, TaskNotFoundError(name, self.registry.entries).message)
        cursors = [value for key, value in request.query if key == "cursor"]
        try:
            page = await asyncio.wait_for(
                self.registry.store.list_runs(task=name, limit=limit,
                                              cursor=cursors[-1] if cursors else None),
                STORE_READ_TIMEOUT)
        except ValueError as exc:  # a cursor no page gave
            return error_response(400, str(exc))
        except Exception as exc:  # the store is down, refuses, or does not answer in time
            logger.error("store: cannot read the runs of %s: %s", name,
                         str(exc) or type(exc).__name__)
            return error_response(503, f"the run history cannot be read now: "
                                       f"{str(exc) or 'no answer in time'}")
        return json_response(200, {"runs": [run.to_dict() for run in page.runs],
                                   "next_cursor": page.next_cursor})


def _http_context() -> TaskContext:
    return TaskContext(trigger="http")


@dataclass(frozen=True)
class Route:
    """A matched API path: the listing (``name is None``), one task, a
    task's run history (``history``), or an :class:`Extension`'s path."""

    name: str | None
    history: bool = False
    extension: Extension | None = None

    @property
    def methods(self) -> tuple[str, ...]:
        if self.extension is not None:
            return self.extension.methods
        return RUN_METHODS if self.runs else LIST_METHODS

    @property
    def runs(self) -> bool:
        """Whether the route runs a task (not the listing, not a history)."""
        return self.name is not None and not self.history


def match_route(path: str) -> Route | None:
    """The API route for ``path``, or ``None`` when the path is not the API's."""
    if path in (PREFIX, PREFIX + "/"):
        return Route(None)
    if path.startswith(PREFIX + "/"):
        name = path[len(PREFIX) + 1 :]
        if name.endswith(RUNS_SUFFIX) and "/" not in name[: -len(RUNS_SUFFIX)]:
            return Route(name[: -len(RUNS_SUFFIX)], history=True)
        return Route(name)
    return None


class PayloadError(ValueError):
    """The request's payload is malformed (HTTP 400); ``str()`` says how."""


MAX_DEPTH = 100
"""How deeply a request body's JSON may nest (arrays and objects)."""

_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")


def request_payload(query: Iterable[tuple[str, str]], body: bytes) -> dict[str, Any]:
    """The run payload: query parameters (a repeated key becomes a list, a
    single key stays a string) overlaid by the JSON body's ``"payload"``
    object, body keys winning. An empty body, or one without ``"payload"``,
    contributes nothing.

    :class:`PayloadError` (400, before anything runs) for a body that is not
    UTF-8 JSON or not an object, a ``"payload"`` that is not an object, and
    for JSON that parses but cannot be stored or echoed faithfully: ``NaN``
    and ``Infinity`` (not JSON), nesting deeper than :data:`MAX_DEPTH`, and
    a ``\\uXXXX`` escape that leaves a lone surrogate in a string (what
    ``JSON.stringify`` emits for a string cut mid-emoji)."""
    payload: dict[str, Any] = {}
    for key, value in query:
        current = payload.get(key)
        if current is None:
            payload[key] = value
        elif isinstance(current, list):
            current.append(value)
        else:
            payload[key] = [current, value]
    if not body.strip():
        return payload
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadError("request body is not UTF-8 text") from None
    try:
        data = _DECODE(text)
    except RecursionError:
        raise PayloadError(f"request body nests deeper than {MAX_DEPTH} levels") from None
    except PayloadError:
        raise
    except ValueError as exc:
        raise PayloadError(f"request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise PayloadError(f"request body must be a JSON object, got {json_kind(data)}")
    _check_parsed(text, data)
    if "payload" in data:
        overlay = data["payload"]
        if not isinstance(overlay, dict):
            raise PayloadError(f'"payload" must be a JSON object, got {json_kind(overlay)}')
        payload.update(overlay)
    return payload


def _refuse_constant(name: str) -> Any:
    raise PayloadError(f"request body is not valid JSON: {name} is not a JSON number")


_DECODE = json.JSONDecoder(parse_constant=_refuse_constant).decode
"""``json.loads(text, parse_constant=...)`` without a new decoder per call."""


def _check_parsed(text: str, data: Any) -> None:
    """The depth and surrogate checks of :func:`request_payload`, walking
    the parsed body only when the raw text could hold the problem (many
    brackets; a ``\\u`` escape), so ordinary bodies cost two ``str`` scans."""
    deep = text.count("[") + text.count("{") > MAX_DEPTH
    escaped = "\\u" in text
    if not (deep or escaped):
        return
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if escaped and _LONE_SURROGATE.search(value):
                raise PayloadError(f"request body holds a lone UTF-16 surrogate in "
                                   f"{value[:40]!r}; "
                                   "send well-formed Unicode text")
            continue
        if isinstance(value, dict):
            children: Iterable[Any] = [*value.keys(), *value.values()]
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > MAX_DEPTH:
            raise PayloadError(f"request body nests deeper than {MAX_DEPTH} levels")
        stack.extend((child, depth + 1) for child in children)


def json_kind(value: Any) -> str:
    """How a JSON value is named in messages ("an array", "null", ...)."""
    kinds = {list: "an array", str: "a string", bool: "a boolean", int: "a number",
             float: "a number", type(None): "null", dict: "an object"}
    return kinds.get(type(value), type(value).__name__)


async def handle(api: TaskApi, request: HttpRequest) -> HttpResponse | None:
    """Answer ``request`` if it is for the task API, else ``None`` (so a host
    app can route it elsewhere). ``request.body`` is the whole body."""
    route = api.route(request.path)
    if route is None:
        return None
    refused = api.admit(route, request)
    if refused is not None:
        return refused
    return await dispatch(api, route, request)


async def dispatch(api: TaskApi, route: Route, request: HttpRequest) -> HttpResponse:
    """Answer an admitted request whose body has been read (the part every
    server adapter shares: ASGI here, taskpack's own server in :mod:`taskpack.handler`). Every
    failure is an answer in the error shape: an exception no route expected
    (a history that cannot be read, ...) is logged and answered 500."""
    try:
        if route.extension is not None:
            return api.too_large(len(request.body)) or await route.extension.handle(request)
        if route.name is None:
            return await api.listing()
        if route.history:
            return await api.runs(route.name, request)
        return api.too_large(len(request.body)) or await api.run(route.name, request)
    except Exception as exc:
        logger.error("%s %s failed", request.method, request.path, exc_info=exc)
        return api.failure(exc, f"internal error: {type(exc).__name__}: {exc}")


# -- ASGI ---------------------------------------------------------------------

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Hook = Callable[[], Awaitable[None] | None]


class BodyTooLarge(Exception):
    """A request body is over the API's ``body_limit`` (answered 413)."""


class Disconnected(Exception):
    """The client went away before its request body was read (no answer)."""


def asgi_app(
    api: TaskApi,
    *,
    fallback: ASGIApp | None = None,
    on_startup: Iterable[Hook] = (),
    on_shutdown: Iterable[Hook] = (),
    access_log: bool | None = None,
) -> ASGIApp:
    """An ASGI 3 application serving ``api``.

    Paths outside the API go to ``fallback`` when given, else get a 404 JSON
    error. Bodies are read with ``api.body_limit`` enforced while streaming
    (a 413 as soon as the limit is passed, or up front from
    ``Content-Length``); the access policy and method are checked before the
    body is read. Lifespan: ``on_startup`` hooks run in order at startup,
    ``on_shutdown`` hooks in order at shutdown (each may be sync or async);
    a failing startup hook reports ``lifespan.startup.failed``. With a
    ``fallback``, the fallback's own lifespan runs inside ours (our startup
    hooks first, our shutdown hooks last); a fallback without lifespan
    support is tolerated. ``access_log`` (default: ``TASKPACK_ACCESS_LOG``,
    see :mod:`taskpack.logs`) logs one line per HTTP request.
    """
    startup = tuple(on_startup)
    shutdown = tuple(on_shutdown)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await _lifespan(startup, shutdown, fallback, receive, send)
            return
        if kind != "http":
            if fallback is not None:
                await fallback(scope, receive, send)
            return  # websockets are not ours: returning closes the connection
        path = app_path(scope)
        route = api.route(path)
        if route is None:
            if fallback is not None:
                await fallback(scope, receive, send)
            else:
                await send_response(send, error_response(404, f"no route for {path}"))
            return
        request = _request_head(scope, path)
        response = api.admit(route, request)
        if response is None:
            try:
                body = await _read_body(receive, request.headers, api)
            except BodyTooLarge:
                response = api.too_large(api.body_limit + 1)
            except Disconnected:
                return
            else:
                request = HttpRequest(request.method, request.path, request.query,
                                      request.headers, body, request.client_host)
                response = await dispatch(api, route, request)
        assert response is not None
        await send_response(send, response)

    if access_log if access_log is not None else access_log_enabled():
        return access_logged(app)
    return app


def access_logged(app: ASGIApp) -> ASGIApp:
    """``app`` writing one ``taskpack.access`` line per HTTP request:
    method, path (with the raw query string), status (0 when no response
    was sent), duration and client address."""

    async def logged(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, send_status)
        finally:
            client = scope.get("client")
            log_access(scope["method"], scope["path"],
                       scope.get("query_string", b"").decode("latin-1"), status, started,
                       client[0] if client else None)

    return logged


def log_access(method: str, path: str, query: str, status: int, started: float,
               client: str | None) -> None:
    """The ``taskpack.access`` line of one HTTP request: method, path (with
    the raw ``query`` string), status (0 when no response was sent), the
    duration since ``started`` (``time.perf_counter()``) and the client."""
    fields = {
        "method": method,
        "path": path + (f"?{query}" if query else ""),
        "status": status,
        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
        "client": client or "-",
    }
    access_logger.info(logfmt(fields), extra={FIELDS: fields})


def app_path(scope: Scope) -> str:
    """The path below the app's mount point: servers and routers include
    ``root_path`` in ``path`` (uvicorn ``--root-path``, a Starlette ``Mount``)."""
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if root_path and path.startswith(root_path):
        return path[len(root_path):] or "/"
    return path


def _request_head(scope: Scope, path: str) -> HttpRequest:
    client = scope.get("client")
    raw_query = scope.get("query_string", b"")
    query = parse_qsl(raw_query.decode("utf-8", "replace"), keep_blank_values=True) \
        if raw_query else []
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        # ASGI header names are lower-case already; lower() is cheap insurance.
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return HttpRequest(scope["method"].upper(), path, query, headers, b"",
                       client[0] if client else None)


async def _read_body(receive: Receive, headers: Mapping[str, str], api: TaskApi) -> bytes:
    return await collect_body(_chunks(receive), headers.get("content-length"), api.body_limit)


async def _chunks(receive: Receive) -> AsyncIterator[bytes]:
    """The body parts of an ASGI request; :class:`Disconnected` when the
    client goes first."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Disconnected
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


async def collect_body(chunks: AsyncIterable[bytes], declared: str | None, limit: int) -> bytes:
    """A request body from its parts, at most ``limit`` bytes:
    :class:`BodyTooLarge` at once when ``declared`` (``Content-Length``)
    says more, else as soon as the parts pass the limit, before the rest is
    read."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        parts.append(chunk)
    return b"".join(parts)


async def send_response(send: Send, response: HttpResponse) -> None:
    """Send ``response`` on an ASGI ``send`` channel (with ``content-length``)."""
    if response.headers is JSON_HEADERS:
        headers = [_JSON_HEADER, (b"content-length", b"%d" % len(response.body))]
    else:
        headers = [(k.encode("latin-1"), v.encode("latin-1"))
                   for k, v in response.headers.items()]
        headers.append((b"content-length", b"%d" % len(response.body)))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})


async def _run_hooks(hooks: Iterable[Hook], phase: str, send: Send) -> bool:
    """Run ``hooks`` for the lifespan ``phase`` (``startup``, ``shutdown``);
    if one raises, log it, send ``lifespan.<phase>.failed`` and return False."""
    try:
        for hook in hooks:
            result = hook()
            if result is not None:
                await result
    except Exception as exc:
        logger.exception("%s failed", phase)
        await send({"type": f"lifespan.{phase}.failed", "message": f"{type(exc).__name__}: {exc}"})
        return False
    return True


async def _lifespan(
    startup: tuple[Hook, ...],
    shutdown: tuple[Hook, ...],
    fallback: ASGIApp | None,
    receive: Receive,
    send: Send,
) -> None:
    """Answer the lifespan protocol, running our hooks around the fallback's."""
    message = await receive()
    assert message["type"] == "lifespan.startup"
    if not await _run_hooks(startup, "startup", send):
        return
    if fallback is not None:
        after = await _fallback_lifespan(fallback, receive, send)
        if after is None:
            return
        message = after
    else:
        await send({"type": "lifespan.startup.complete"})
        message = await receive()
    assert message["type"] == "lifespan.shutdown"
    if await _run_hooks(shutdown, "shutdown", send):
        await send({"type": "lifespan.shutdown.complete"})


async def _fallback_lifespan(fallback: ASGIApp, receive: Receive, send: Send) -> Message | None:
    """Run the fallback's lifespan between our startup and shutdown hooks.

    The fallback sees the startup and shutdown events; its ``shutdown.complete``
    is held back (our hooks run first) and the shutdown message is returned
    for the caller to finish. ``None`` when startup failed (already reported).
    A fallback that raises before completing startup is treated as not
    supporting lifespan, as servers do.
    """
    state: dict[str, Any] = {"started": False, "failed": False, "shutdown": None}
    first = True

    async def inner_receive() -> Message:
        nonlocal first
        if first:
            first = False
            return {"type": "lifespan.startup"}
        message = await receive()
        if message["type"] == "lifespan.shutdown":
            state["shutdown"] = message
        return message

    async def inner_send(message: Message) -> None:
        kind = message["type"]
        if kind == "lifespan.startup.complete":
            state["started"] = True
        elif kind == "lifespan.startup.failed":
            state["failed"] = True
        elif kind in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
            if kind == "lifespan.shutdown.failed":
                logger.error("fallback app shutdown failed: %s", message.get("message", ""))
            return
        await send(message)

    try:
        await fallback({"type": "lifespan", "asgi": {"version": "3.0"}}, inner_receive, inner_send)
    except Exception:
        if state["started"] or state["failed"]:
            raise
        logger.debug("fallback app does not support lifespan")
    if state["failed"]:
        return None
    if not state["started"]:
        await send({"type": "lifespan.startup.complete"})
    shutdown: Message | None = state["shutdown"]
    return shutdown if shutdown is not None else await receive()


# -- building blocks for platform apps ----------------------------------------


def request_head(scope: Scope) -> HttpRequest:
    """An ASGI HTTP ``scope`` as an :class:`HttpRequest` without its body:
    for platform handlers that decide on the request line and headers alone
    (the Vercel cron routes). ``path`` is the app-relative path, as
    :func:`asgi_app` routes it (``root_path`` removed)."""
    return _request_head(scope, app_path(scope))
