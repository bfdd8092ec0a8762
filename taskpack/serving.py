"""Serving the bundle's app in this process: granian's HTTP server (Rust,
HTTP/1.1 and HTTP/2) embedded in a uvloop event loop, through granian's
native RSGI interface (:class:`taskpack.rsgi.RSGIApp`: the task API answered
directly, other paths by the ASGI app). Used by the ``server`` and
``server_cluster`` bundles (:func:`taskpack.server.serve`,
:func:`taskpack.cluster.serve_cluster`); the ``asgi`` bundle leaves the
choice of server to its user and never imports this module.

Why granian embedded, measured on this project's 2-core machine
(docs/benchmarks.md): with the bundle's app, granian answered the task API
faster than uvicorn with uvloop + httptools and with a lower p99, and far
faster than uvicorn's default pure-Python stack; over RSGI rather than
ASGI, a bare app answered 1.3x as many requests here; embedding it (rather than
granian's own process manager, which starts each worker as a fresh
interpreter) keeps cold start to one interpreter and lets the cluster's
supervisor fork workers that share one listening socket.

Only granian's Rust extension is imported
(:func:`taskpack.rsgi.granian_worker_module`): :func:`run` does what
``granian.server.embed.Server`` does for one RSGI worker (the callback
scheduler, the stop signal), because importing granian's Python package
costs a tenth of the bundle's cold start.

:func:`run` returns when the server has stopped: on SIGTERM or SIGINT it
stops accepting connections, lets running requests finish, then runs the
bundle's shutdown (it stops its scheduler and writes its history, each
bounded by its ``shutdown_grace``). The exit status is 0 after that, 1 when
the bundle's startup or shutdown failed or the address cannot be bound (one
``error:`` line, from :func:`bind`).

The worker's constructor and callback scheduler are granian internals (its
embedded server is documented as experimental); this module pins them with
the exact version in the bundle's ``requirements.txt`` (``granian==2.8.7``)
and is covered end to end by the self-hosted tests.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .rsgi import RSGIApp, granian_worker_module

if TYPE_CHECKING:
    from .http import ASGIApp, TaskApi
    from .rsgi import HTTPProtocol, Scope

logger = logging.getLogger("taskpack.server")

BACKLOG = 2048


def bind(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """The listening socket (inheritable: cluster workers accept on it).
    An address that cannot be bound (in use, not ours) is one error line,
    exit 1: granian's own listener would share a port already in use
    (``SO_REUSEPORT``), so the bundles always bind here.

    ``reuse_port`` (a cluster's supervisor where :data:`BALANCED`): the
    socket is bound with ``SO_REUSEPORT`` but does not listen; it holds the
    port, and each worker listens on its own socket (:func:`worker_socket`)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        print(f"error: cannot listen on {host}:{port}: {exc.strerror}", file=sys.stderr)
        sys.exit(1)
    if not reuse_port:
        sock.listen(BACKLOG)
    sock.set_inheritable(True)
    return sock


BALANCED = sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")
"""Whether a cluster's workers each get their own listening socket on the
port (Linux ``SO_REUSEPORT``: the kernel spreads new connections evenly
over them). On one shared socket, whichever worker wakes first accepts a
burst of connections: measured here, wrk's 50 connections all landed on
one of two workers and the other stayed idle."""


def worker_socket(held: socket.socket) -> socket.socket:
    """A cluster worker's own listening socket on the address of ``held``
    (the supervisor's, from ``bind(..., reuse_port=True)``), which the
    worker then closes."""
    address = held.getsockname()
    sock = socket.socket(held.family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    sock.listen(BACKLOG)
    held.close()
    return sock


def run(app: ASGIApp, api: TaskApi, sock: socket.socket, *, grace: float,
        startup: Callable[[], Awaitable[None]], shutdown: Callable[[], Awaitable[None]],
        on_stop: Callable[[], None] | None = None,
        prepare: Callable[[], Awaitable[None]] | None = None,
        on_serving: Callable[[], None] | None = None) -> int:
    """Serve ``app`` (the bundle's ASGI app, whose task API is ``api``) on
    the listening socket ``sock`` (:func:`bind`; cluster workers inherit it)
    until SIGTERM/SIGINT; the exit status. ``prepare`` is awaited first, on
    the serving event loop (the ``server`` bundle opens its store there:
    one loop, one opening); what it raises propagates out of ``run`` and
    nothing is served. ``startup`` and ``shutdown`` (the bundle's own,
    :meth:`taskpack.server.BundleApp.startup`) run around serving: no
    request is answered before startup completed (connections made
    meanwhile wait in the socket's backlog); one that raises is logged and
    the status is 1. ``on_serving`` is called as
    serving begins, before any request is handed to the app (the bundles
    start their scheduler then: :meth:`taskpack.server.BundleApp.serving`).
    ``on_stop`` is called first thing on the signal (the dashboard ends its
    live streams, which would otherwise hold the graceful shutdown)."""
    serving = _serve(InFlight(RSGIApp(api, app)), sock.fileno(), grace, startup, shutdown,
                     on_stop, prepare, on_serving)
    try:
        import uvloop
    except ImportError:  # not on Windows: the standard loop serves too
        return asyncio.run(serving)
    return uvloop.run(serving)


class InFlight:
    """An RSGI ``app`` with its requests in flight tracked, so that those
    still running when the grace period after a stop signal is over can be
    cancelled: granian waits for every request before it returns, and a
    sync task that never returns would hold it forever. A cancelled run is
    recorded as ``cancelled``."""

    def __init__(self, app: RSGIApp) -> None:
        self.app = app
        self.tasks: set[asyncio.Task[Any]] = set()

    async def __call__(self, scope: Scope, proto: HTTPProtocol) -> None:
        task = asyncio.current_task()
        if task is None:
            await self.app(scope, proto)
            return
        self.tasks.add(task)
        try:
            await self.app(scope, proto)
        finally:
            self.tasks.discard(task)

    def cancel(self) -> None:
        """Cancel every request still being answered."""
        for task in list(self.tasks):
            task.cancel()


# What granian's embedded server (granian.server.embed.Server, 2.8.7) passes
# its worker with the settings taskpack used: one Rust runtime thread, HTTP/1
# and HTTP/2 (auto), no websockets, no TLS, no static files.
RUNTIME_THREADS = 1
RUNTIME_BLOCKING_THREADS = 512
BLOCKING_THREADS = 1
BLOCKING_THREADS_IDLE_TIMEOUT = 30
BACKPRESSURE = 128
NO_TLS: tuple[Any, ...] = (False, None, None, None, "tls1.3", None, [], False)


async def _serve(rsgi: InFlight, fd: int, grace: float,
                 startup: Callable[[], Awaitable[None]], shutdown: Callable[[], Awaitable[None]],
                 on_stop: Callable[[], None] | None,
                 prepare: Callable[[], Awaitable[None]] | None,
                 on_serving: Callable[[], None] | None) -> int:
    granian = granian_worker_module()
    logging.getLogger("_granian").setLevel(logging.CRITICAL + 1)  # granian's log_enabled=False
    loop = asyncio.get_running_loop()
    if prepare is not None:
        await prepare()
    try:
        await startup()
    except Exception:
        logger.exception("startup failed")
        return 1
    stopped = loop.create_future()
    stopping = False

    def stop() -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        from .server import note_stop_signal

        note_stop_signal()  # the shutdown gets what is left of the grace
        if on_stop is not None:
            on_stop()
        loop.call_later(grace, rsgi.cancel)
        # Running requests, then the shutdown (which bounds its own
        # steps by ``grace``), must be done by then.
        loop.call_later(3 * grace + 5, _give_up, 3 * grace + 5)
        signal_.set()

    def done() -> None:
        if not stopped.done():
            stopped.set_result(None)

    def served() -> None:  # from granian's thread: the worker has stopped
        loop.call_soon_threadsafe(done)

    signal_ = granian.WorkerSignal()
    signal_.add_cb(served)
    worker = granian.RSGIWorker(
        1, (None, granian.SocketHolder(fd, False, BACKLOG)), None, RUNTIME_THREADS,
        RUNTIME_BLOCKING_THREADS, BLOCKING_THREADS, BLOCKING_THREADS_IDLE_TIMEOUT, BACKPRESSURE,
        "auto", None, None, False, None, *NO_TLS, (None, None))
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    try:
        if on_serving is not None:  # before any request the worker hands over
            loop.call_soon(on_serving)
        worker.serve_async(_scheduler(granian, loop, rsgi), loop, signal_)
        await stopped
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    try:
        await shutdown()
    except Exception:
        logger.exception("shutdown failed")
        return 1
    return 0


def _scheduler(granian: Any, loop: asyncio.AbstractEventLoop, app: InFlight) -> Any:
    """The worker's callback scheduler: each request, as granian's Rust side
    hands it over (a watcher with its scope and protocol), runs ``app`` in
    an asyncio task (granian's ``_CBSchedulerAIO`` and
    ``_future_watcher_wrapper``, without access logging)."""
    from asyncio.tasks import _enter_task, _leave_task

    async def handle(watcher: Any) -> None:
        try:
            await app(watcher.scope, watcher.proto)
        except BaseException as exc:
            watcher.err(exc)
            return
        watcher.done()

    def start(coro: Any, watcher: Any) -> None:
        watcher.taskref(loop.create_task(coro))

    class Scheduler(granian.CallbackScheduler):  # type: ignore[misc]
        def __init__(self, *args: Any) -> None:
            super().__init__()
            ctx = self._ctx

            def schedule(watcher: Any) -> None:
                # Returns None: granian's Rust side keeps a reference to
                # whatever this returns, so returning the Handle (as a
                # lambda would) leaked every request's task, coroutine and
                # protocol objects, and full collections grew to ~200 ms.
                loop.call_soon_threadsafe(start, handle(watcher), watcher, context=ctx)

            self._schedule_fn = schedule

    return Scheduler(loop, handle, None, functools.partial(_enter_task, loop),
                     functools.partial(_leave_task, loop))


def _give_up(seconds: float) -> None:
    logger.error("shutdown did not finish within %.0f s; exiting", seconds)
    logging.shutdown()
    os._exit(1)
