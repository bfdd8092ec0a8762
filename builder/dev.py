"""``taskpack dev``: the task API on loopback, the scheduler, and reload.

The server answers loopback clients only (:func:`taskpack.http.loopback_only`)
with tracebacks in 500 responses; its listing (``GET /_nitro/tasks``) gives
each task's newest run from the project's SQLite history (``"lastRun"``).
A poller watches the config and the project's Python files; on a change the
project is loaded again and, if it is valid, swapped in: a fresh registry
(edited modules are imported again), a restarted scheduler. An invalid
project after an edit is reported and the last good one keeps serving.
Ctrl-C or SIGTERM stops it: no new requests, running tasks get
``[server] shutdown_grace`` seconds (default 5).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from taskpack import Registry, set_registry
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
from taskpack.server import closes_dashboard, serve_health, stop_signals_handled_by
from taskpack.web.app import Dashboard

from .cli_options import project_root, root_option
from .config import CANDIDATES
from .devstate import remove_state, write_state
from .errors import TaskpackError, UsageError
from .manifest import build_manifest
from .project import Project, load_project

if TYPE_CHECKING:
    from taskpack.scheduler import Scheduler

DEFAULT_GRACE = 5.0
POLL_INTERVAL = 0.3
SETTLE_DELAY = 0.1
SKIPPED_DIRS = frozenset({"__pycache__", "node_modules", "site-packages"})

Snapshot = dict[str, tuple[int, int]]


# -- watching -------------------------------------------------------------------


class ProjectWatcher:
    """Polls modification times (and sizes) of the config candidates and
    every ``*.py`` file under the root. Skipped: folders starting with ``.``,
    ``__pycache__``, ``node_modules``, virtualenvs and the build output."""

    def __init__(self, root: Path, output_dir: str) -> None:
        self.root = root
        self.output_dir = output_dir
        self.last = self.snapshot()

    def snapshot(self) -> Snapshot:
        found: Snapshot = {}
        for name in CANDIDATES:
            self._stat(self.root / name, name, found)
        output = (self.root / self.output_dir).resolve()
        for folder, dirs, files in os.walk(self.root):
            here = Path(folder)
            dirs[:] = sorted(
                d for d in dirs
                if not d.startswith(".") and d not in SKIPPED_DIRS
                and (here / d).resolve() != output and not (here / d / "pyvenv.cfg").exists()
            )
            for file in files:
                if file.endswith(".py"):
                    path = here / file
                    self._stat(path, path.relative_to(self.root).as_posix(), found)
        return found

    @staticmethod
    def _stat(path: Path, key: str, into: Snapshot) -> None:
        try:
            stat = path.stat()
        except OSError:
            return
        into[key] = (stat.st_mtime_ns, stat.st_size)

    def changes(self) -> list[str]:
        """Paths added, removed or modified since the last call (and forget them)."""
        current = self.snapshot()
        changed = sorted(
            key for key in current.keys() | self.last.keys()
            if current.get(key) != self.last.get(key)
        )
        self.last = current
        return changed


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


def make_registry(project: Project) -> Registry:
    """The registry serving ``project``, made current for ``run_task``; runs
    are recorded in the project's SQLite history (``taskpack runs``)."""
    registry = Registry.from_manifest(build_manifest(project), project.root, history="sqlite")
    set_registry(registry)
    return registry


def dashboard_schedules(project: Project) -> list[dict[str, Any]]:
    """The schedules as the dashboard shows them (next fire times aside):
    descriptions and each preset's deployment."""
    schedules: list[dict[str, Any]] = build_manifest(project, dashboard=True)["schedules"]
    return schedules


def start_scheduler(registry: Registry) -> Scheduler:
    """Start firing ``registry``'s schedules: the one place the dev server
    touches the scheduler. Imported here: the CLI's other commands do not
    need croniter."""
    from taskpack.scheduler import Scheduler

    scheduler = Scheduler(registry, timezone=registry.timezone)
    scheduler.start()
    return scheduler


class DevServer:
    """One ``taskpack dev`` session over ``project`` (the last good version)."""

    def __init__(self, project: Project, *, grace: float) -> None:
        self.project = project
        self.grace = grace
        self.api = TaskApi(make_registry(project), policy=loopback_only(), dev=True,
                           last_runs=True)
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
        self._retiring: set[asyncio.Task[None]] = set()

    @property
    def registry(self) -> Registry:
        return self.api.registry

    async def _routes(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Beside the task API: ``GET /_health``, answered as built servers
        answer it (no access policy: it tells only the number of tasks)."""
        if scope["type"] == "http":
            await serve_health(self.registry, scope, send)

    async def startup(self) -> None:
        self.scheduler = start_scheduler(self.registry)
        self._watch = asyncio.create_task(self._watch_loop(), name="taskpack-dev-watch")

    async def shutdown(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        if self.scheduler is not None:
            await self.scheduler.stop(self.grace)
        if self._retiring:
            await asyncio.wait(self._retiring, timeout=self.grace)
        await self.registry.drain(self.grace)
        self.registry.close()

    async def _watch_loop(self) -> None:
        watcher = self.watcher
        while True:
            await asyncio.sleep(POLL_INTERVAL)
            changed = await asyncio.to_thread(watcher.changes)
            if not changed:
                continue
            await asyncio.sleep(SETTLE_DELAY)  # let an editor finish writing
            changed = sorted({*changed, *await asyncio.to_thread(watcher.changes)})
            await self.reload(changed)

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
        self.api.registry = make_registry(project)
        old_registry.close()
        if old_scheduler is not None:
            retiring = asyncio.create_task(old_scheduler.stop(self.grace))
            self._retiring.add(retiring)
            retiring.add_done_callback(self._retiring.discard)
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
        import uvicorn
    except ImportError:
        raise TaskpackError("taskpack dev needs uvicorn: pip install 'taskpack[server]'") from None
    project = load_project(root)
    grace = float(project.preset_options("server").get("shutdown_grace", DEFAULT_GRACE))
    sock = bind(host, port)
    bound_port = sock.getsockname()[1]
    dev = DevServer(project, grace=grace)
    config = uvicorn.Config(
        dev.app, lifespan="on", access_log=False, log_level="info",
        timeout_graceful_shutdown=max(int(grace), 1),
        # The loopback check judges the real peer: never an address taken
        # from X-Forwarded-For, whatever FORWARDED_ALLOW_IPS says.
        proxy_headers=False,
    )
    server = uvicorn.Server(config)
    closes_dashboard(server, dev.dashboard)
    _log_runs()
    url = f"http://{f'[{host}]' if ':' in host else host}:{bound_port}"
    state = write_state(project.root, client_host(sock.getsockname()[0]), bound_port)
    click.echo(f"taskpack dev: serving {url}/_nitro/tasks ({summary(project)})")
    click.echo(f"taskpack dev: dashboard {url}/_taskpack/")
    if not is_loopback_address(sock.getsockname()[0]):
        click.echo(f"taskpack dev: warning: listening on {host}, but only clients on this "
                   "machine (loopback) are served; others get 403", err=True)
    echo_warnings(project)
    try:
        with _quiet_signals():
            server.run(sockets=[sock])
    finally:
        sock.close()
        remove_state(project.root, state.pid)
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


@contextlib.contextmanager
def _quiet_signals() -> Iterator[None]:
    """Let uvicorn own SIGINT/SIGTERM while serving. uvicorn re-raises the
    signal that stopped it once it is done; these handlers absorb that, so
    the process can clean up and exit 0 instead of dying mid-cleanup."""
    def absorb(sig: int, frame: FrameType | None) -> None:
        pass

    with stop_signals_handled_by(absorb):
        yield


def _log_runs() -> None:
    """Show the API's one-line-per-run log and task failures on stderr."""
    logger = logging.getLogger("taskpack")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(_Formatter())
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        record.message = record.getMessage()
        text = f"{stamp} {record.levelname.lower()}: {record.message}"
        if record.exc_info and record.levelno >= logging.ERROR:
            text += "\n" + self.formatException(record.exc_info)
        return text
