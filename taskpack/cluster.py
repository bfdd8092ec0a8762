"""``server_cluster``: N worker processes serving one port, exactly one of
them running the scheduler.

The supervisor (:func:`serve_cluster`) binds the socket, forks ``WORKERS``
workers (default: the CPU count) that all accept on it, and replaces any
worker that dies. Each worker tries to take an exclusive ``flock`` on
``<run dir>/scheduler.lock`` (:class:`FileLease`); the one holding it runs
the scheduler and writes its pid into the file. The kernel releases the lock
when its holder dies, even by SIGKILL, and another worker takes it within
``poll`` seconds, so every cron fires once per host, not once per worker.

Across hosts a file lock is not enough: several hosts running this preset
each fire every cron. That needs a distributed lock (planned) or a single
scheduling host.

All workers record their runs in the same store (see
:func:`taskpack.server.bundle_store`; the SQLite default's WAL mode and
write lock keep every row).

SIGTERM/SIGINT to the supervisor: every worker gets SIGTERM and shuts down
gracefully (stops accepting, finishes requests, stops the scheduler and
waits for running tasks, up to ``shutdown_grace`` seconds); the supervisor
exits 0 once they are gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import logging
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from . import logs
from .server import (
    BundleApp,
    ServerConfigError,
    ServerOptions,
    address_from_env,
    check_store,
    exit_on_config_error,
    setup_logs,
)

logger = logging.getLogger("taskpack.cluster")

WORKERS_ENV = "WORKERS"
RUN_DIR_ENV = "TASKPACK_RUN_DIR"
RUN_DIR = "run"
LOCK_NAME = "scheduler.lock"
STARTUP_FAILURE = 3


class FileLease:
    """The scheduler gate of a cluster worker: an exclusive ``flock`` on
    ``path``, polled every ``poll`` seconds until taken."""

    def __init__(self, path: Path, poll: float = 0.5) -> None:
        self.path = path
        self.poll = poll
        self.held = False
        self._fd: int | None = None
        self._waiter: asyncio.Task[None] | None = None

    async def start(self, begin: Callable[[], None]) -> None:
        """Start waiting for the lock in the background; ``begin()`` runs
        once it is held."""
        self._waiter = asyncio.create_task(self._acquire(begin))

    async def _acquire(self, begin: Callable[[], None]) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        self._fd = fd
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                await asyncio.sleep(self.poll)
                continue
            break
        self.held = True
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        logger.info("process %d holds %s: it runs the scheduler", os.getpid(), self.path)
        begin()

    async def stop(self, end: Callable[[], Awaitable[Any]]) -> None:
        """Stop waiting; if the lock is held, ``await end()`` (stopping the
        scheduler) before releasing it."""
        if self._waiter is not None and not self._waiter.done():
            self._waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._waiter
        try:
            if self.held:
                await end()
        finally:
            if self._fd is not None:
                if self.held:
                    os.ftruncate(self._fd, 0)
                os.close(self._fd)  # releases the lock
            self._fd = None
            self.held = False


def workers_from_env(env: Mapping[str, str]) -> int:
    """``WORKERS`` (a positive integer), default the CPU count."""
    text = env.get(WORKERS_ENV, "").strip()
    if not text:
        return os.cpu_count() or 1
    if not text.isdigit() or int(text) < 1:
        raise ServerConfigError(f"{WORKERS_ENV}: expected a positive integer, got {text!r}")
    return int(text)


def lock_path(base: Path, env: Mapping[str, str]) -> Path:
    """``$TASKPACK_RUN_DIR/scheduler.lock``, default ``<base>/run/scheduler.lock``."""
    folder = Path(env[RUN_DIR_ENV]) if env.get(RUN_DIR_ENV) else base / RUN_DIR
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ServerConfigError(f"{RUN_DIR_ENV}: cannot create {folder}: {exc.strerror}") from None
    return folder / LOCK_NAME


def serve_cluster(base: Path, options: ServerOptions) -> None:
    """Run the bundle at ``base`` as a cluster until SIGTERM (its ``index.py``)."""
    env = os.environ
    with exit_on_config_error():
        setup_logs()
        host, port = address_from_env(env)
        count = workers_from_env(env)
        bundle = BundleApp.load(base, options, gate=FileLease(lock_path(base, env)))
        asyncio.run(check_store(bundle.registry.store))

    from .serving import bind, run

    logs.lean_records()
    sock = bind(host, port)

    def work() -> None:
        on_stop = bundle.dashboard.close if bundle.dashboard is not None else None
        status = run(bundle.app, sock, grace=options.shutdown_grace, on_stop=on_stop)
        sys.exit(STARTUP_FAILURE if status else 0)

    logger.info("serving on http://%s:%d with %d workers", host, port, count)
    sys.exit(Supervisor(work, count, options.shutdown_grace).run())


class Supervisor:
    """Keeps ``count`` forked workers running ``target`` until SIGTERM/SIGINT."""

    def __init__(self, target: Callable[[], None], count: int, grace: float) -> None:
        self.target = target
        self.count = count
        self.grace = grace
        self.stopping = False
        self.workers: list[BaseProcess] = []
        self._context = multiprocessing.get_context("fork")

    def run(self) -> int:
        """Supervise until told to stop; the exit status (1 if workers cannot start)."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        self.workers = [self._spawn() for _ in range(self.count)]
        status = 0
        while not self.stopping:
            time.sleep(0.2)
            for index, worker in enumerate(self.workers):
                if worker.is_alive() or self.stopping:
                    continue
                worker.join()
                if worker.exitcode == STARTUP_FAILURE:
                    logger.error("worker %s failed to start; stopping", worker.pid)
                    self.stopping, status = True, 1
                    break
                logger.warning("worker %s exited (%s); starting another", worker.pid,
                               worker.exitcode)
                self.workers[index] = self._spawn()
        self._stop_all()
        return status

    def _on_signal(self, sig: int, frame: object) -> None:
        self.stopping = True

    def _spawn(self) -> BaseProcess:
        process = self._context.Process(target=self._child, daemon=False)
        process.start()
        return process

    def _child(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)
        _term_with_parent()
        self.target()

    def _stop_all(self) -> None:
        for worker in self.workers:
            if worker.is_alive() and worker.pid is not None:
                os.kill(worker.pid, signal.SIGTERM)
        deadline = time.monotonic() + 2 * self.grace + 5
        for worker in self.workers:
            worker.join(max(0.0, deadline - time.monotonic()))
            if worker.is_alive():
                logger.error("worker %s did not stop in time; killing it", worker.pid)
                worker.kill()
                worker.join()


_PR_SET_PDEATHSIG = 1


def _term_with_parent() -> None:
    """Ask Linux to send this worker SIGTERM when the supervisor dies (even
    by SIGKILL), so no orphaned worker keeps the port and the scheduler.
    Elsewhere a no-op."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        logger.debug("prctl(PR_SET_PDEATHSIG) is unavailable")
