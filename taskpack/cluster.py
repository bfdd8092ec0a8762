"""``server_cluster``: N worker processes serving one port, each running
the scheduler.

The supervisor (:func:`serve_cluster`) binds the port, forks ``WORKERS``
workers (default: the CPU count) that all accept connections on it (on
Linux each on its own ``SO_REUSEPORT`` socket, so the kernel spreads
connections evenly: :data:`taskpack.serving.BALANCED`), and replaces any
worker that dies. Every worker runs the scheduler: each fire is claimed in
the store (:mod:`taskpack.scheduler`, DESIGN §11), so it runs once whatever
the number of workers, instances or hosts, and a dead worker's share needs
no fail-over. Nothing the scheduler needs lives inside the bundle, so a
rebuild in place under a running cluster neither stops nor doubles
scheduling.

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
import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping
from multiprocessing.process import BaseProcess
from pathlib import Path

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
STARTUP_FAILURE = 3


def workers_from_env(env: Mapping[str, str]) -> int:
    """``WORKERS`` (a positive integer), default the CPU count."""
    text = env.get(WORKERS_ENV, "").strip()
    if not text:
        return os.cpu_count() or 1
    if not text.isdigit() or int(text) < 1:
        raise ServerConfigError(f"{WORKERS_ENV}: expected a positive integer, got {text!r}")
    return int(text)


def serve_cluster(base: Path, options: ServerOptions) -> None:
    """Run the bundle at ``base`` as a cluster until SIGTERM (its ``index.py``)."""
    env = os.environ
    with exit_on_config_error():
        setup_logs()
        host, port = address_from_env(env)
        count = workers_from_env(env)
        bundle = BundleApp.load(base, options)
        asyncio.run(check_store(bundle.registry))

    from .serving import BALANCED, bind, run, worker_socket

    logs.lean_records()
    sock = bind(host, port, reuse_port=BALANCED)

    def work() -> None:
        on_stop = bundle.dashboard.close if bundle.dashboard is not None else None
        try:
            listener = worker_socket(sock) if BALANCED else sock
        except OSError as exc:
            logger.error("worker cannot listen on %s:%d: %s", host, port, exc.strerror)
            sys.exit(STARTUP_FAILURE)
        status = run(bundle.app, bundle.api, listener, grace=options.shutdown_grace,
                     startup=bundle.startup, shutdown=bundle.shutdown, on_stop=on_stop)
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
