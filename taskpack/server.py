"""The self-hosted server of a built bundle (presets ``server``,
``server_cluster`` and ``asgi``).

The generated entry files only call into this module, so what they do is
tested here as code:

* :class:`BundleApp` — the bundle's ASGI application: the task API (when
  ``[server] tasks_api = true``, behind ``Authorization: Bearer
  $TASKPACK_TASKS_TOKEN``), ``GET /_health``, and the scheduler started and
  stopped by the ASGI lifespan. ``app`` is the standalone application,
  ``lifespan`` an async context manager for a host framework
  (``FastAPI(lifespan=...)``) and ``mountable`` the same routes for
  ``app.mount(...)``.
* :func:`serve` — one process serving the bundle on taskpack's HTTP server
  (:mod:`taskpack.serving`; the ``server`` bundle's ``index.py``): ``HOST`` and
  ``PORT`` (``TASKPACK_HOST``/``TASKPACK_PORT`` win) default to
  ``0.0.0.0:3000``. On SIGTERM or SIGINT it stops accepting connections,
  lets running requests finish, stops the scheduler and waits for running
  tasks, each up to ``shutdown_grace`` seconds, and exits 0.

Runs are recorded in the store (:mod:`taskpack.store`, :func:`store_url`):
``$TASKPACK_DATABASE_URL``, else ``[store] url``, else the SQLite file
``.taskpack/store.sqlite``; a relative SQLite path is relative to the
working directory the server starts in, never to the bundle, which every
build replaces. Cluster workers share it (WAL mode, no row lost). The store
is opened at startup (a store that cannot be used is one error line, exit
2) and closed, its buffered runs written within a bound, at shutdown.
``/_health`` reports it (``store``). ``taskpack runs --db FILE`` reads a
SQLite store.

The HTTP server is imported only by :func:`serve`, so ``app.py`` works
under any ASGI server. Settings that are wrong (a missing token, a bad port) raise
:class:`ServerConfigError`, which the entry files print as one line with
exit code 2.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Protocol

from . import logs
from .clock import wall_clock
from .http import (
    TASKS_TOKEN_ENV,
    ASGIApp,
    HttpRequest,
    HttpResponse,
    Receive,
    Scope,
    Send,
    TaskApi,
    api_off,
    app_path,
    asgi_app,
    bearer_token,
    configured_secret,
    error_response,
    json_response,
    send_response,
)
from .layout import load_registry, read_manifest
from .queue.roles import Role, RoleError, role_from_env, runs_worker, serves_web
from .queue.service import QueueService, QueueSettings
from .registry import Registry
from .store import Store, StoreError, StoreUnavailable, store_for
from .store.urls import describe, resolve_url

if TYPE_CHECKING:
    import uvicorn

    from .web.app import Dashboard

logger = logging.getLogger("taskpack.server")

HEALTH_STORE_TIMEOUT = 2.0
SCHEDULER_ENV = "TASKPACK_SCHEDULER"
HEALTH_PATH = "/_health"
DEFAULT_HOST = "0.0.0.0"
DEFAULT_PORT = 3000


async def serve_health(registry: Registry, scope: Scope, send: Send,
                       scheduler: SchedulerHandle | None = None) -> None:
    """``GET``/``HEAD /_health`` (below the mount point) answers
    ``{"status": "ok", "tasks": N, "store": {"ok", "backend", "error",
    "lost_runs"}}`` (200 while the store is down: its field says so), plus
    ``"scheduler"`` (:meth:`taskpack.scheduler.Scheduler.status`) while one
    runs; any other path a 404 JSON error. Built servers and ``taskpack
    dev`` answer it the same way."""
    path = app_path(scope)
    if path == HEALTH_PATH and scope["method"] in ("GET", "HEAD"):
        body: dict[str, Any] = {"status": "ok", "tasks": len(registry.entries),
                                "store": await store_health(registry.store)}
        if scheduler is not None:
            body["scheduler"] = scheduler.status()
        await send_response(send, json_response(200, body))
    else:
        await send_response(send, error_response(404, f"no route for {path}"))


class ServerConfigError(Exception):
    """The server cannot start as configured; ``str()`` is the one-line reason."""


@dataclass(frozen=True)
class ServerOptions:
    """The ``[server]`` table as the build baked it into the entry file."""

    tasks_api: bool = False
    shutdown_grace: float = 30.0
    dashboard: bool = False


class SchedulerHandle(Protocol):
    """What the server needs of a scheduler (``taskpack.scheduler.Scheduler``)."""

    def start(self) -> None: ...

    async def stop(self, grace: float) -> None: ...

    def status(self) -> dict[str, Any]: ...


def address_from_env(env: Mapping[str, str]) -> tuple[str, int]:
    """(host, port) from ``TASKPACK_HOST``/``HOST`` and ``TASKPACK_PORT``/``PORT``."""
    host = env.get("TASKPACK_HOST") or env.get("HOST") or DEFAULT_HOST
    key = "TASKPACK_PORT" if env.get("TASKPACK_PORT") else "PORT"
    text = env.get(key) or str(DEFAULT_PORT)
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise ServerConfigError(f"{key}: expected a port number (0-65535), got {text!r}")
    return host, int(text)


def token_from_env(options: ServerOptions, env: Mapping[str, str]) -> str | None:
    """The task API's bearer token; ``None`` when the API is off.
    :class:`ServerConfigError` when it is on and the token is unset or blank."""
    if not options.tasks_api:
        if options.dashboard:
            raise ServerConfigError("[server] dashboard = true needs the task API (its token "
                                    "guards the dashboard): set [server] tasks_api = true")
        return None
    token = configured_secret(env.get(TASKS_TOKEN_ENV))
    if token is None:
        raise ServerConfigError(
            f"{TASKS_TOKEN_ENV} is empty: the task API is on ([server] tasks_api = true), so set "
            "it to a secret token callers send as `Authorization: Bearer <token>`"
        )
    return token


def bundle_store(manifest: Mapping[str, Any], env: Mapping[str, str],
                 cwd: Path | None = None) -> Store:
    """The bundle's store (not opened): its URL from ``env`` and the
    manifest (:func:`taskpack.store.urls.resolve_url`), a relative SQLite
    path under ``cwd`` (default: the working directory). A URL no backend
    takes is a :class:`ServerConfigError`."""
    url, source = resolve_url(env, manifest.get("store"))
    settings = manifest.get("store") or {}
    try:
        return store_for(url, root=cwd or Path.cwd(),
                         history_limit=int(settings.get("history_limit", 1000)))
    except StoreError as exc:
        raise ServerConfigError(f"{source}: {exc}") from None


async def check_store(registry: Registry) -> None:
    """Open and close the registry's store once (:func:`store_errors`): a
    cluster's supervisor does, before it forks its workers."""
    async with store_errors(registry):
        await registry.open()
    await registry.close(1.0)


@contextlib.asynccontextmanager
async def store_errors(registry: Registry) -> AsyncIterator[None]:
    """Around opening the registry's store at start: a store that cannot be
    used (bad URL, unreachable, auth refused, newer schema) is closed again
    and becomes one :class:`ServerConfigError` (exit 2), naming the host but
    never the password. A SQLite file on a disk that refuses writes is not
    an error: runs are lost and counted, ``/_health`` says so
    (:meth:`taskpack.registry.Registry.open`)."""
    try:
        yield
    except StoreError as exc:
        await registry.close(1.0)
        if isinstance(exc, StoreUnavailable):
            raise ServerConfigError(f"store {describe(getattr(registry.store, 'url', ''))}: "
                                    f"{exc}") from None
        raise ServerConfigError(str(exc)) from None


def scheduling_on(env: Mapping[str, str]) -> bool:
    """``TASKPACK_SCHEDULER``: ``on`` (the default) or ``off``, for a process
    whose schedules a platform runs instead (Kubernetes CronJobs);
    :class:`ServerConfigError` for another value."""
    value = env.get(SCHEDULER_ENV, "").strip().lower() or "on"
    if value not in ("on", "off"):
        raise ServerConfigError(f"{SCHEDULER_ENV}: expected on or off, got {env[SCHEDULER_ENV]!r}")
    return value == "on"


def api_disabled(request: HttpRequest) -> HttpResponse | None:
    """The access policy of a server whose task API is off: every API path
    answers 404, as if it did not exist."""
    return api_off("server")


class BundleApp:
    """A built bundle served over ASGI.

    ``registry`` holds the bundle's tasks; ``token`` turns the task API on
    (``None``: off). ``make_scheduler`` builds the scheduler for the
    registry's schedules (default: :class:`taskpack.scheduler.Scheduler`).
    Every server process runs one (unless ``scheduling`` is false:
    ``TASKPACK_SCHEDULER=off``): fires are claimed (DESIGN §11), so each runs
    once however many processes and hosts serve the bundle.
    ``dashboard`` serves ``/_taskpack/`` (:mod:`taskpack.web`) behind the
    task API's token, with ``schedules`` (the manifest's) for its task view;
    without it ``/_taskpack/`` is 404 like any unknown path. ``role``
    (``TASKPACK_ROLE``, :mod:`taskpack.queue.roles`) says what the process
    does besides ``/_health``: ``all`` serves the task and job APIs and runs
    a worker (``queue``: its concurrency and lease), ``web`` only serves,
    ``worker`` only runs jobs. ``schedule_when_serving`` leaves the
    scheduler's start to :meth:`serving`, which the bundles' own servers
    call once they accept requests; otherwise :meth:`startup` starts it.
    """

    def __init__(
        self,
        registry: Registry,
        *,
        token: str | None,
        shutdown_grace: float = 30.0,
        make_scheduler: Callable[[Registry], SchedulerHandle] | None = None,
        scheduling: bool = True,
        dashboard: bool = False,
        schedules: Sequence[Mapping[str, Any]] | None = None,
        role: Role = "all",
        queue: QueueSettings | None = None,
        schedule_when_serving: bool = False,
    ) -> None:
        self.registry = registry
        self.role = role
        self.queue = QueueService(lambda: self.registry, role=role, settings=queue)
        self.shutdown_grace = shutdown_grace
        self.scheduler: SchedulerHandle | None = None
        self.scheduling = scheduling
        self.schedule_when_serving = schedule_when_serving
        self._store_open = False
        self._ready_at: float | None = None
        self._make_scheduler = make_scheduler or self.default_scheduler
        web = serves_web(role)
        policy = bearer_token(token) if token is not None and web else api_disabled
        self.api = TaskApi(registry, policy=policy,
                           extensions=[self.queue.jobs_api()] if web else ())
        self.dashboard: Dashboard | None = None
        routes: ASGIApp = self._routes
        if dashboard and web:
            if token is None:
                raise ServerConfigError("the dashboard needs the task API's token")
            from .web.app import Dashboard

            listed = list(schedules) if schedules is not None else None
            self.dashboard = routes = Dashboard(
                self.api, fallback=self._routes,
                schedules=(lambda: listed) if listed is not None else None)
        self.app: ASGIApp = asgi_app(self.api, fallback=routes,
                                     on_startup=[self.startup], on_shutdown=[self.shutdown])
        self.mountable: ASGIApp = self.app

    @classmethod
    def load(cls, base: Path, options: ServerOptions,
             env: Mapping[str, str] | None = None, **kwargs: Any) -> BundleApp:
        """The app of the bundle at ``base`` with the baked-in ``options``;
        the token and the store (:func:`bundle_store`) come from ``env``
        (default ``os.environ``)."""
        env = os.environ if env is None else env
        token = token_from_env(options, env)
        kwargs.setdefault("scheduling", scheduling_on(env))
        try:
            role = role_from_env(env)
        except RoleError as exc:
            raise ServerConfigError(str(exc)) from None
        manifest = read_manifest(base)
        registry = load_registry(base, manifest, store=bundle_store(manifest, env))
        return cls(registry, token=token, shutdown_grace=options.shutdown_grace,
                   dashboard=options.dashboard, schedules=manifest["schedules"], role=role,
                   queue=QueueSettings.from_manifest(manifest), **kwargs)

    async def _routes(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        # Below the mount point, as the task API routes (a Starlette Mount,
        # uvicorn --root-path).
        await serve_health(self.registry, scope, send, self.scheduler)

    async def open_store(self) -> None:
        """Open the registry's store (:meth:`taskpack.registry.Registry.open`)
        unless it is open already: :meth:`startup` calls it, and so does a
        server that opens it earlier, to report a store that cannot be used
        before it serves (:func:`serve`). :meth:`shutdown` closes it."""
        if not self._store_open:
            await self.registry.open()
            self._store_open = True

    async def startup(self) -> None:
        """Open the store (:meth:`open_store`), start the queue (a worker,
        by role), then start scheduling when there are schedules, unless
        ``schedule_when_serving``: then :meth:`serving` does."""
        try:
            await self.open_store()
        except StoreError as exc:
            logger.error("%s", exc)
            raise
        self.queue.start()
        self._ready_at = wall_clock()
        if not self.schedule_when_serving:
            self._begin()

    def serving(self) -> None:
        """The server accepts requests now: start scheduling, if
        ``schedule_when_serving`` left it to this (the bundles' own servers,
        :func:`serve`: their first requests are not held by the scheduler's
        start). Fires due since :meth:`startup` finished are not lost: the
        scheduler counts them from then (``since``)."""
        if self.schedule_when_serving and self._ready_at is not None and self.scheduler is None:
            self._begin()

    def _begin(self) -> None:
        if not self.scheduling:
            logger.info("scheduler off (%s=off): the platform runs the schedules", SCHEDULER_ENV)
            return
        if not self.registry.schedules:
            return
        self.scheduler = self._make_scheduler(self.registry)
        self.scheduler.start()
        logger.info("scheduler started in process %d (%d schedule(s))", os.getpid(),
                    len(self.registry.schedules))

    async def shutdown(self) -> None:
        """Stop scheduling, stop the worker (its running jobs get the grace),
        wait for running scheduled tasks and background
        work (``wait_until``, spawned runs) within what is left of ``shutdown_grace``
        (:func:`grace_left`; runs still going then are cancelled and
        recorded so), then close the store (its buffered runs are written,
        within a bound). Sync tasks still running in their threads are
        abandoned: they do not keep the process alive."""
        await self._end()
        await self.queue.stop(grace_left(self.shutdown_grace))
        await self.registry.drain(grace_left(self.shutdown_grace))
        await self.registry.close(min(self.shutdown_grace, 5.0) or 1.0)
        self._store_open = False
        self._ready_at = None

    async def _end(self) -> None:
        scheduler, self.scheduler = self.scheduler, None
        if scheduler is not None:
            await scheduler.stop(grace_left(self.shutdown_grace))
            logger.info("scheduler stopped in process %d", os.getpid())

    def default_scheduler(self, registry: Registry) -> SchedulerHandle:
        """taskpack's own scheduler over ``registry``'s schedules and time
        zone, claiming fires in the registry's store, whose jobs the queue's
        workers run. A ``memory://`` store with no worker in this process
        has no worker anywhere: its fires then run here, unclaimed."""
        from .scheduler import Scheduler

        store: Store | None = registry.store
        if registry.store.scheme == "memory" and not runs_worker(self.role):
            store = None
        return Scheduler(registry, timezone=registry.timezone, store=store, since=self._ready_at)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: object = None) -> AsyncIterator[None]:
        """Startup and shutdown for a host app that mounts :attr:`mountable`:
        ``FastAPI(lifespan=bundle.lifespan)`` or Starlette's ``lifespan=``."""
        await self.startup()
        try:
            yield
        finally:
            await self.shutdown()


async def store_health(store: Store) -> dict[str, Any]:
    """``store.health()`` within :data:`HEALTH_STORE_TIMEOUT` seconds (a
    store that does not answer in time is reported down). It runs in the
    request's own task: a store that answers without waiting (SQLite's
    counters) answers without the request yielding the event loop."""
    try:
        async with asyncio.timeout(HEALTH_STORE_TIMEOUT):
            return await store.health()
    except Exception as exc:
        return {"ok": False, "backend": store.scheme,
                "error": str(exc) or "no answer in time", "lost_runs": None}


# -- running in this process -------------------------------------------------
# The bundles run on taskpack's HTTP server (taskpack.serving); `taskpack dev` runs on uvicorn.


def make_server(config: uvicorn.Config) -> uvicorn.Server:
    """A uvicorn server (``taskpack dev``) that exits normally (status 0)
    after a graceful shutdown on SIGTERM/SIGINT, where uvicorn itself
    re-raises the signal."""
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            with stop_signals_handled_by(self.handle_exit):
                yield

    return Server(config)


_stop_signalled: float | None = None
"""When (``time.monotonic()``) the first SIGTERM/SIGINT of this process
arrived through :func:`stop_signals_handled_by`."""


def note_stop_signal() -> None:
    """Note that a stop signal arrived (the first one counts), for
    :func:`grace_left`; servers that handle signals themselves call it."""
    global _stop_signalled
    if _stop_signalled is None:
        _stop_signalled = time.monotonic()


def grace_left(grace: float) -> float:
    """Seconds left of a shutdown grace period of ``grace`` seconds, counted
    from the first stop signal: uvicorn spends part of it letting requests
    finish before the lifespan shutdown runs, and the whole shutdown must
    fit in one grace period. All of ``grace`` when no signal was seen (a
    host app's own lifespan)."""
    if _stop_signalled is None:
        return grace
    return max(0.0, grace - (time.monotonic() - _stop_signalled))


def closes_dashboard(server: uvicorn.Server, dashboard: Dashboard | None) -> None:
    """End the dashboard's live streams as soon as ``server`` is asked to
    stop, so they do not hold its graceful shutdown for the grace period."""
    if dashboard is None:
        return
    original = server.handle_exit

    def handle_exit(sig: int, frame: FrameType | None) -> None:
        dashboard.close()
        original(sig, frame)

    server.handle_exit = handle_exit  # type: ignore[method-assign]


@contextlib.contextmanager
def stop_signals_handled_by(handler: Callable[[int, FrameType | None], Any]) -> Iterator[None]:
    """SIGINT and SIGTERM go to ``handler`` inside the block (the first one's
    time is noted for :func:`grace_left`); the previous handlers are back
    afterwards. Main thread only (as for ``signal.signal``)."""

    def noted(sig: int, frame: FrameType | None) -> Any:
        note_stop_signal()
        return handler(sig, frame)

    previous = {sig: signal.signal(sig, noted) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def setup_logs() -> None:
    """taskpack's log lines on stderr (:func:`taskpack.logs.setup`); an
    unknown ``TASKPACK_LOG_FORMAT`` is a :class:`ServerConfigError`."""
    try:
        logs.setup()
    except ValueError as exc:
        raise ServerConfigError(str(exc)) from None


def serve(base: Path, options: ServerOptions) -> None:
    """Run the bundle at ``base`` in this process until SIGTERM (``index.py``),
    served by taskpack's HTTP server (:mod:`taskpack.serving`); exits with its status."""
    with exit_on_config_error():
        setup_logs()
        host, port = address_from_env(os.environ)
        bundle = BundleApp.load(base, options, schedule_when_serving=True)
    from .serving import bind, run

    logs.lean_records()
    sock = bind(host, port)

    async def prepare() -> None:
        async with store_errors(bundle.registry):
            await bundle.open_store()  # once: the app's startup finds it open
        logger.info("serving on http://%s:%d", f"[{host}]" if ":" in host else host, port)

    on_stop = bundle.dashboard.close if bundle.dashboard is not None else None
    with exit_on_config_error():
        status = run(bundle.app, bundle.api, sock, grace=options.shutdown_grace,
                     startup=bundle.startup, shutdown=bundle.shutdown, on_stop=on_stop,
                     prepare=prepare, on_serving=bundle.serving)
    sys.exit(status)


@contextlib.contextmanager
def exit_on_config_error() -> Iterator[None]:
    """Print a :class:`ServerConfigError` as ``error: <reason>`` and exit 2."""
    try:
        yield
    except ServerConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
