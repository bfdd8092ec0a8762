"""``taskpack dev``: the task API on loopback, the scheduler, and reload.

The server answers loopback clients only (:func:`taskpack.http.loopback_only`)
with tracebacks in 500 responses; its listing (``GET /_nitro/tasks``) gives
each task's newest run from the project's store (``"lastRun"``).
A watcher (:mod:`builder.watch`, OS file events) follows the config and the
project's Python files; on a change the
project is loaded again and, if it is valid, swapped in: a fresh registry
(edited modules are imported again), a restarted scheduler. An invalid
project after an edit is reported and the last good one keeps serving.
Ctrl-C or SIGTERM stops it: no new requests, running tasks get
``[server] shutdown_grace`` seconds (default 5).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from taskpack import Registry, logs, set_registry
from taskpack.http import (
    Receive,
    Scope,
    Send,
    TaskApi,
    asgi_app,
    is_loopback_address,
    loopback_only,
)
from taskpack.loader import forget_module
from taskpack.queue.service import QueueService, QueueSettings
from taskpack.server import closes_dashboard, grace_left, make_server, serve_health
from taskpack.store import Store
from taskpack.web.app import Dashboard

from .cli_options import project_root, root_option
from .db import open_store, project_store, run_on_store
from .devstate import AlreadyRunning, claim, remove_state, write_state
from .errors import TaskpackError, UsageError
from .manifest import build_manifest
from .project import Project, load_project
from .watch import SKIPPED_DIRS, ProjectWatcher

if TYPE_CHECKING:
    from taskpack.scheduler import Scheduler

DEFAULT_GRACE = 5.0



# -- watching -------------------------------------------------------------------


def drop_project_modules(root: Path) -> None:
    """Forget modules imported from the project's own files (helpers that
    tasks import, such as ``jobs.record``) so a reload imports them afresh.
    Never taskpack itself, nor anything under a virtualenv in the root."""
    root = root.resolve()
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if not file or name == "taskpack" or name.startswith("taskpack."):
            continue
        path = Path(file).resolve()
        if not path.is_relative_to(root):
            continue
        parts = path.relative_to(root).parts
        if any(p.startswith(".") or p in SKIPPED_DIRS for p in parts):
            continue
        forget_module(name)


# -- the server -----------------------------------------------------------------


def summary(project: Project) -> str:
    tasks, schedules = len(project.tasks), len(project.schedules)
    return (f"{tasks} task{'s' * (tasks != 1)}, "
            f"{schedules} schedule{'s' * (schedules != 1)}")


def echo_warnings(project: Project) -> None:
    for warning in project.warnings:
        click.echo(f"warning: {warning}", err=True)


def make_registry(project: Project, store: Store) -> Registry:
    """The registry serving ``project``, made current for ``run_task``; runs
    are recorded in the project's store (``taskpack runs``), which every
    reload's registry shares."""
    registry = Registry.from_manifest(build_manifest(project), project.root, store=store)
    set_registry(registry)
    return registry


def dashboard_schedules(project: Project) -> list[dict[str, Any]]:
    """The schedules as the dashboard shows them (next fire times aside):
    descriptions and each preset's deployment."""
    schedules: list[dict[str, Any]] = build_manifest(project, dashboard=True)["schedules"]
    return schedules


def start_scheduler(registry: Registry) -> Scheduler:
    """Start firing ``registry``'s schedules: the one place the dev server
    touches the scheduler. As in a built server, fires are claimed in the
    project's store and run as jobs by the dev server's worker, so a second
    process on the same store (another ``taskpack dev``, a server started in
    the project folder) never runs a fire twice. Imported here: the CLI's
    other commands do not need the scheduler."""
    from taskpack.scheduler import Scheduler

    scheduler = Scheduler(registry, timezone=registry.timezone, store=registry.store)
    scheduler.start()
    return scheduler


class DevServer:
    """One ``taskpack dev`` session over ``project`` (the last good version)."""

    def __init__(self, project: Project, *, grace: float, store: Store | None = None) -> None:
        self.project = project
        self.grace = grace
        store = store if store is not None else project_store(project)
        self.queue = QueueService(lambda: self.registry,
                                  settings=QueueSettings.from_manifest(build_manifest(project)))
        self.api = TaskApi(make_registry(project, store), policy=loopback_only(), dev=True,
                           last_runs=True, extensions=[self.queue.jobs_api()])
        self.schedules = dashboard_schedules(project)
        self.dashboard = Dashboard(self.api, schedules=lambda: self.schedules,
                                   page_policy=self.api.policy, dev=True,
                                   fallback=self._routes)
        self.app = asgi_app(self.api, fallback=self.dashboard,
                            on_startup=[self.startup], on_shutdown=[self.shutdown])
        # The baseline snapshot is taken now, before the server answers: an
        # edit made as soon as it is up must count as a change.
        self.watcher = ProjectWatcher(project.root, project.config.output_dir)
        self.scheduler: Scheduler | None = None
        self._watch: asyncio.Task[None] | None = None
        self._retiring: set[asyncio.Future[None]] = set()
        self.on_started: list[Callable[[], object]] = []
        """Called once serving (the stop signals are then handled)."""

    @property
    def registry(self) -> Registry:
        return self.api.registry

    async def _routes(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Beside the task API: ``GET /_health``, answered as built servers
        answer it (no access policy: it tells only the number of tasks)."""
        if scope["type"] == "http":
            await serve_health(self.registry, scope, send, self.scheduler)

    async def startup(self) -> None:
        await open_store(self.registry.store)
        self.queue.start()  # the dev server runs a worker: enqueued jobs run here
        self.scheduler = start_scheduler(self.registry)
        await self.watcher.start()
        self._watch = asyncio.create_task(self._watch_loop(), name="taskpack-dev-watch")
        for started in self.on_started:
            started()

    async def shutdown(self) -> None:
        if self._watch is not None:
            self.watcher.stop()
            await asyncio.wait({self._watch}, timeout=2)
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        if self.scheduler is not None:
            await self.scheduler.stop(grace_left(self.grace))
        if self._retiring:
            await asyncio.wait(self._retiring, timeout=grace_left(self.grace))
        await self.queue.stop(grace_left(self.grace))
        await self.registry.drain(grace_left(self.grace))
        await self.registry.close(min(self.grace, 5.0) or 1.0)

    async def _watch_loop(self) -> None:
        async for changed in self.watcher.batches():
            await self.reload(changed)

    def _retire(self, work: asyncio.Future[None]) -> None:
        """Let ``work`` (stopping the old scheduler)
        finish in the background; shutdown waits for it within the grace."""
        self._retiring.add(work)
        work.add_done_callback(self._retiring.discard)

    async def reload(self, changed: list[str]) -> None:
        """Load the project again and swap it in if it is valid."""
        what = ", ".join(changed[:3])
        if len(changed) > 3:
            what += f" and {len(changed) - 3} more"
        try:
            project = await asyncio.to_thread(load_project, self.project.root)
            schedules = await asyncio.to_thread(dashboard_schedules, project)
        except Exception as exc:  # anything: the server must outlive a bad edit
            problem = (exc.format_message() if isinstance(exc, TaskpackError)
                       else f"reloading failed: {type(exc).__name__}: {exc}")
            click.echo(f"error: {problem}", err=True)
            click.echo("taskpack dev: keeping the last good version until this is fixed", err=True)
            return
        old_registry, old_scheduler = self.registry, self.scheduler
        old_registry.unload()
        drop_project_modules(project.root)
        self.project = project
        self.schedules = schedules
        self.api.registry = make_registry(project, old_registry.store)  # one store
        self.queue.reloaded()
        if old_scheduler is not None:
            self._retire(asyncio.ensure_future(old_scheduler.stop(self.grace)))
        self.scheduler = start_scheduler(self.api.registry)
        click.echo(f"taskpack dev: reloaded ({what} changed): {summary(project)}")
        echo_warnings(project)


@click.command("dev")
@root_option()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=3000, show_default=True,
              help="Port to listen on (0: any free port).")
def dev_command(root: Path, host: str, port: int) -> None:
    """Serve the task API on loopback, run the schedules, reload on change."""
    serve(project_root(root), host, port)


def serve(root: Path, host: str, port: int) -> None:
    """Run ``taskpack dev`` for the project at ``root`` until Ctrl-C/SIGTERM."""
    try:
        import uvicorn  # noqa: F401  (checked before anything starts)
        import watchfiles  # noqa: F401
    except ImportError as exc:
        raise TaskpackError(f"taskpack dev needs {exc.name}: pip install 'taskpack[server]'"
                            ) from None
    project = load_project(root)
    grace = float(project.preset_options("server").get("shutdown_grace", DEFAULT_GRACE))
    try:
        owner = claim(project.root)  # held until this process ends
    except AlreadyRunning as exc:
        raise TaskpackError(
            f"taskpack dev is already running for this project ({exc.describe()}); stop it "
            "first, or use it: `taskpack task run` goes through it"
        ) from None
    try:
        _serve(project, host, port, grace)
    finally:
        os.close(owner)


def _serve(project: Project, host: str, port: int, grace: float) -> None:
    """Serve ``project`` on ``host:port`` until Ctrl-C/SIGTERM (the claim on
    the project is the caller's)."""
    import uvicorn

    store = project_store(project)
    run_on_store(store, open_store)  # a store that cannot be used: one line, exit 2
    sock = bind(host, port)
    bound_port = sock.getsockname()[1]
    dev = DevServer(project, grace=grace, store=store)
    config = uvicorn.Config(
        dev.app, lifespan="on", access_log=False, log_level="info",
        timeout_graceful_shutdown=max(int(grace), 1),
        # The loopback check judges the real peer: never an address taken
        # from X-Forwarded-For, whatever FORWARDED_ALLOW_IPS says.
        proxy_headers=False,
    )
    server = make_server(config)
    closes_dashboard(server, dev.dashboard)
    _log_runs()
    url = f"http://{f'[{host}]' if ':' in host else host}:{bound_port}"
    dev.on_started.append(
        lambda: write_state(project.root, client_host(sock.getsockname()[0]), bound_port))
    click.echo(f"taskpack dev: serving {url}/_nitro/tasks ({summary(project)})")
    click.echo(f"taskpack dev: dashboard {url}/_taskpack/")
    if not is_loopback_address(sock.getsockname()[0]):
        click.echo(f"taskpack dev: warning: listening on {host}, but only clients on this "
                   "machine (loopback) are served; others get 403", err=True)
    echo_warnings(project)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        remove_state(project.root, os.getpid())
        click.echo("taskpack dev: stopped")


def client_host(bound: str) -> str:
    """Where a client on this machine reaches a socket bound to ``bound``:
    the loopback address for a wildcard (``0.0.0.0``, ``::``), which is not
    an address to connect to, else ``bound`` itself."""
    if bound in ("0.0.0.0", ""):
        return "127.0.0.1"
    if bound == "::":
        return "::1"
    return bound


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``--port 0``: any free port)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UsageError("--host", f"cannot resolve {host!r}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise UsageError("--port", f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(128)
    return sock


def _log_runs() -> None:
    """taskpack's log lines (one per run) on stderr, in the format of every
    other entry point (:mod:`taskpack.logs`)."""
    try:
        logs.setup()
    except ValueError as exc:
        raise TaskpackError(str(exc)) from None
