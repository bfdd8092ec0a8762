"""Serving an ASGI app in this process: granian's HTTP server (Rust, HTTP/1.1
and HTTP/2) embedded in a uvloop event loop. Used by the ``server`` and
``server_cluster`` bundles (:func:`taskpack.server.serve`,
:func:`taskpack.cluster.serve_cluster`); the ``asgi`` bundle leaves the
choice of server to its user and never imports this module.

Why granian embedded, measured on this project's 2-core machine
(docs/benchmarks.md): with the bundle's app, granian answered the task API
faster than uvicorn with uvloop + httptools and with a lower p99, and far
faster than uvicorn's default pure-Python stack; embedding it (rather than
granian's own process manager, which starts each worker as a fresh
interpreter) keeps cold start to one interpreter and lets the cluster's
supervisor fork workers that share one listening socket.

:func:`run` returns when the server has stopped: on SIGTERM or SIGINT it
stops accepting connections, lets running requests finish, then runs the
app's lifespan shutdown (the bundle stops its scheduler and writes its
history, each bounded by its ``shutdown_grace``). The exit status is 0
after that, 1 when the app's lifespan startup failed or the address cannot
be bound (one ``error:`` line, from :func:`bind`).

granian's embedded server is documented as experimental; this module pins
its behaviour with the exact version in the bundle's ``requirements.txt``
(``granian==2.8.7``) and is covered end to end by the self-hosted tests.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .http import ASGIApp, Receive, Scope, Send

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


def run(app: ASGIApp, sock: socket.socket, *, grace: float,
        on_stop: Callable[[], None] | None = None) -> int:
    """Serve ``app`` on the listening socket ``sock`` (:func:`bind`; cluster
    workers inherit it) until SIGTERM/SIGINT; the exit status.
    ``on_stop`` is called first thing on the signal (the dashboard ends its
    live streams, which would otherwise hold the graceful shutdown)."""
    serving = _serve(InFlight(app), sock.fileno(), grace, on_stop)
    try:
        import uvloop
    except ImportError:  # not on Windows: the standard loop serves too
        return asyncio.run(serving)
    return uvloop.run(serving)


class InFlight:
    """``app`` with its HTTP requests in flight tracked, so that those still
    running when the grace period after a stop signal is over can be
    cancelled: granian waits for every request before the lifespan
    shutdown, and a sync task that never returns would hold it forever.
    A cancelled run is recorded as ``cancelled``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.tasks: set[asyncio.Task[Any]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task() if scope["type"] == "http" else None
        if task is None:
            await self.app(scope, receive, send)
            return
        self.tasks.add(task)
        try:
            await self.app(scope, receive, send)
        finally:
            self.tasks.discard(task)

    def cancel(self) -> None:
        """Cancel every request still being answered."""
        for task in list(self.tasks):
            task.cancel()


async def _serve(app: InFlight, fd: int, grace: float,
                 on_stop: Callable[[], None] | None) -> int:
    from granian import _granian
    from granian.constants import Interfaces
    from granian.server import embed

    base: Any = embed.Server  # untyped internals: _init_shared_socket, SocketHolder(fd)

    class Embedded(base):  # type: ignore[misc]
        """granian's embedded server on our listening socket."""

        def _init_shared_socket(self) -> None:
            holder: Any = _granian.SocketHolder
            self._ssp, self._shd = None, holder(fd, False, BACKLOG)

    server: Any = Embedded(app, interface=Interfaces.ASGI, log_enabled=False, websockets=False)
    loop = asyncio.get_running_loop()

    def stop() -> None:
        from .server import note_stop_signal

        note_stop_signal()  # the lifespan shutdown gets what is left of the grace
        if on_stop is not None:
            on_stop()
        loop.call_later(grace, app.cancel)
        if not server.interrupt_signal:
            # Running requests, then the lifespan shutdown (which bounds its
            # own steps by ``grace``), must be done by then.
            loop.call_later(3 * grace + 5, _give_up, 3 * grace + 5)
        server.stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    try:
        await server.serve()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return 1 if server.interrupt_children else 0


def _give_up(seconds: float) -> None:
    logger.error("shutdown did not finish within %.0f s; exiting", seconds)
    logging.shutdown()
    os._exit(1)
