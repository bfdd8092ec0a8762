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
* :func:`serve` — one uvicorn process (``server``/``asgi``): ``HOST`` and
  ``PORT`` (``TASKPACK_HOST``/``TASKPACK_PORT`` win) default to
  ``0.0.0.0:3000``. On SIGTERM or SIGINT it stops accepting connections,
  lets running requests finish, stops the scheduler and waits for running
  tasks, each up to ``shutdown_grace`` seconds, and exits 0.

Runs are recorded in a SQLite run history (:func:`history_file`): the
file ``$TASKPACK_HISTORY_PATH``, else ``[server] history_path`` (default
``.taskpack/history.sqlite``); a relative path is relative to the working
directory the server starts in, never to the bundle, which every build
replaces. Cluster workers share the file (WAL mode, no row lost). The store
is closed, its queued runs written, at shutdown. ``taskpack runs --db FILE``
reads it.

``uvicorn`` is imported only by :func:`serve`, so ``app.py`` works under any
ASGI server. Settings that are wrong (a missing token, a bad port) raise
:class:`ServerConfigError`, which the entry files print as one line with
exit code 2.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Protocol

from .history import DEFAULT_PATH
from .http import (
    ASGIApp,
    HttpRequest,
    HttpResponse,
    Receive,
    Scope,
    Send,
    TaskApi,
    app_path,
    asgi_app,
    bearer_token,
    configured_secret,
    error_response,
    json_response,
    send_response,
)
from .layout import load_registry, read_manifest
from .registry import Registry

if TYPE_CHECKING:
    import uvicorn

    from .web.app import Dashboard

logger = logging.getLogger("taskpack.server")

TOKEN_ENV = "TASKPACK_TASKS_TOKEN"
HISTORY_PATH_ENV = "TASKPACK_HISTORY_PATH"
SCHEDULER_ENV = "TASKPACK_SCHEDULER"
HEALTH_PATH = "/_health"
DEFAULT_HOST = "0.0.0.0"
DEFAULT_PORT = 3000


async def serve_health(registry: Registry, scope: Scope, send: Send) -> None:
    """``GET``/``HEAD /_health`` (below the mount point) answers
    ``{"status": "ok", "tasks": N}``; any other path a 404 JSON error.
    Built servers and ``taskpack dev`` answer it the same way."""
    path = app_path(scope)
    if path == HEALTH_PATH and scope["method"] in ("GET", "HEAD"):
        body = {"status": "ok", "tasks": len(registry.entries)}
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
    token = configured_secret(env.get(TOKEN_ENV))
    if token is None:
        raise ServerConfigError(
            f"{TOKEN_ENV} is empty: the task API is on ([server] tasks_api = true), so set "
            "it to a secret token callers send as `Authorization: Bearer <token>`"
        )
    return token


def history_file(manifest: Mapping[str, Any], env: Mapping[str, str],
                 cwd: Path | None = None) -> Path:
    """The bundle's SQLite run history: ``$TASKPACK_HISTORY_PATH``, else the
    manifest's ``[server] history_path``; relative to ``cwd`` (default: the
    working directory). Its folder is created here, so a path that cannot
    be written is a :class:`ServerConfigError` at start, not a lost history."""
    from_env = env.get(HISTORY_PATH_ENV, "").strip()
    source = HISTORY_PATH_ENV if from_env else "[server] history_path"
    text = from_env or str((manifest.get("history") or {}).get("path", DEFAULT_PATH))
    path = Path(text).expanduser()
    if not path.is_absolute():
        path = (cwd or Path.cwd()) / path
    if path.is_dir():
        raise ServerConfigError(f"{source}: {path} is a folder; give the history file's path")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ServerConfigError(
            f"{source}: cannot create {path.parent} for the run history: {exc.strerror}"
        ) from None
    return path


def scheduling_on(env: Mapping[str, str]) -> bool:
    """``TASKPACK_SCHEDULER``: ``on`` (the default) or ``off``, for a process
    whose schedules a platform runs instead (Kubernetes CronJobs);
    :class:`ServerConfigError` for another value."""
    value = env.get(SCHEDULER_ENV, "").strip().lower() or "on"
    if value not in ("on", "off"):
        raise ServerConfigError(f"{SCHEDULER_ENV}: expected on or off, got {env[SCHEDULER_ENV]!r}")
    return value == "on"


class SchedulingOff:
    """The :class:`SchedulerGate` of a process that must not schedule."""

    async def start(self, begin: Callable[[], None]) -> None:
        logger.info("scheduler off (%s=off): the platform runs the schedules", SCHEDULER_ENV)

    async def stop(self, end: Callable[[], Any]) -> None:
        return None


def api_disabled(request: HttpRequest) -> HttpResponse | None:
    """The access policy of a server whose task API is off: every API path
    answers 404, as if it did not exist."""
    return error_response(404, "the task API is off; enable it with [server] tasks_api = true")


class BundleApp:
    """A built bundle served over ASGI.

    ``registry`` holds the bundle's tasks; ``token`` turns the task API on
    (``None``: off). ``make_scheduler`` builds the scheduler for the
    registry's schedules (default: :class:`taskpack.scheduler.Scheduler`).
    Every server process runs one: fires are claimed (DESIGN §11), so each
    runs once however many processes and hosts serve the bundle.
    ``dashboard`` serves ``/_taskpack/`` (:mod:`taskpack.web`) behind the
    task API's token, with ``schedules`` (the manifest's) for its task view;
    without it ``/_taskpack/`` is 404 like any unknown path.
    """

    def __init__(
        self,
        registry: Registry,
        *,
        token: str | None,
        shutdown_grace: float = 30.0,
        make_scheduler: Callable[[Registry], SchedulerHandle] | None = None,
        dashboard: bool = False,
        schedules: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        self.registry = registry
        self.shutdown_grace = shutdown_grace
        self.scheduler: SchedulerHandle | None = None
        self._make_scheduler = make_scheduler or default_scheduler
        policy = bearer_token(token) if token is not None else api_disabled
        self.api = TaskApi(registry, policy=policy)
        self.dashboard: Dashboard | None = None
        routes: ASGIApp = self._routes
        if dashboard:
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
        the token and the history file (:func:`history_file`) come from
        ``env`` (default ``os.environ``)."""
        env = os.environ if env is None else env
        token = token_from_env(options, env)
        if not scheduling_on(env):
            kwargs["gate"] = SchedulingOff()
        manifest = read_manifest(base)
        registry = load_registry(base, manifest, history="sqlite",
                                 history_path=str(history_file(manifest, env)))
        return cls(registry, token=token, shutdown_grace=options.shutdown_grace,
                   dashboard=options.dashboard, schedules=manifest["schedules"], **kwargs)

    async def _routes(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        # Below the mount point, as the task API routes (a Starlette Mount,
        # uvicorn --root-path).
        await serve_health(self.registry, scope, send)

    async def startup(self) -> None:
        """Start scheduling when there are schedules."""
        if self.registry.schedules:
            self._begin()

    def _begin(self) -> None:
        self.scheduler = self._make_scheduler(self.registry)
        self.scheduler.start()
        logger.info("scheduler started in process %d (%d schedule(s))", os.getpid(),
                    len(self.registry.schedules))

    async def shutdown(self) -> None:
        """Stop scheduling, wait for running scheduled tasks and background
        work (``wait_until``) up to ``shutdown_grace`` seconds each, then
        close the run history (its queued runs are written)."""
        await self._end()
        await self.registry.drain(self.shutdown_grace)
        self.registry.close()

    async def _end(self) -> None:
        scheduler, self.scheduler = self.scheduler, None
        if scheduler is not None:
            await scheduler.stop(self.shutdown_grace)
            logger.info("scheduler stopped in process %d", os.getpid())

    @contextlib.asynccontextmanager
    async def lifespan(self, app: object = None) -> AsyncIterator[None]:
        """Startup and shutdown for a host app that mounts :attr:`mountable`:
        ``FastAPI(lifespan=bundle.lifespan)`` or Starlette's ``lifespan=``."""
        await self.startup()
        try:
            yield
        finally:
            await self.shutdown()


def default_scheduler(registry: Registry) -> SchedulerHandle:
    """taskpack's own scheduler over ``registry``'s schedules and time zone."""
    from .scheduler import Scheduler

    return Scheduler(registry, timezone=registry.timezone)


# -- running under uvicorn ------------------------------------------------------


def uvicorn_config(app: ASGIApp, host: str, port: int, grace: float) -> uvicorn.Config:
    """uvicorn settings of every self-hosted preset: lifespan on, graceful
    shutdown bounded by ``grace``."""
    import uvicorn

    return uvicorn.Config(app, host=host, port=port, lifespan="on",
                          timeout_graceful_shutdown=max(1, round(grace)), log_level="info")


def make_server(config: uvicorn.Config) -> uvicorn.Server:
    """A uvicorn server that exits normally (status 0) after a graceful
    shutdown on SIGTERM/SIGINT, where uvicorn itself re-raises the signal."""
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
    """SIGINT and SIGTERM go to ``handler`` inside the block; the previous
    handlers are back afterwards. Main thread only (as for ``signal.signal``)."""
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def configure_logging() -> None:
    """Show taskpack's own log lines (INFO and up) on stderr, in uvicorn's style."""
    root = logging.getLogger("taskpack")
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)-9s %(name)s: %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.INFO)


def serve(base: Path, options: ServerOptions) -> None:
    """Run the bundle at ``base`` in this process until SIGTERM (``index.py``)."""
    configure_logging()
    with exit_on_config_error():
        host, port = address_from_env(os.environ)
        bundle = BundleApp.load(base, options)
    server = make_server(uvicorn_config(bundle.app, host, port, options.shutdown_grace))
    closes_dashboard(server, bundle.dashboard)
    server.run()
    if not server.started:
        sys.exit(1)


@contextlib.contextmanager
def exit_on_config_error() -> Iterator[None]:
    """Print a :class:`ServerConfigError` as ``error: <reason>`` and exit 2."""
    try:
        yield
    except ServerConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
