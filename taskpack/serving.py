"""Serving the bundle's app in this process: taskpack's HTTP/1.1 server
(:mod:`taskpack.http1`, on a uvloop event loop) with the bundle's handler
(:class:`taskpack.handler.BundleHandler`: the task API answered directly,
other paths by the ASGI app). Used by the ``server`` and ``server_cluster``
bundles (:func:`taskpack.server.serve`, :func:`taskpack.cluster.serve_cluster`);
the ``asgi`` bundle leaves the choice of server to its user and never
imports this module.

:func:`run` returns when the server has stopped: on SIGTERM or SIGINT it
stops accepting connections, lets running requests finish (cancelling those
still running after the grace period: a cancelled run is recorded as
``cancelled``), then runs the bundle's shutdown (it stops its scheduler and
writes its history, each bounded by its ``shutdown_grace``). The exit status
is 0 after that, 1 when the bundle's startup or shutdown failed or the
address cannot be bound (one ``error:`` line, from :func:`bind`).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from .handler import BundleHandler
from .http1 import Server

if TYPE_CHECKING:
    from .http import ASGIApp, TaskApi

logger = logging.getLogger("taskpack.server")

BACKLOG = 2048


def bind(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """The listening socket (inheritable: cluster workers accept on it).
    An address that cannot be bound (in use, not ours) is one error line,
    exit 1.

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
    live streams, which would otherwise hold the graceful shutdown). The
    server closes ``sock`` when it stops."""
    server = Server(BundleHandler(api, app), body_limit=api.body_limit)
    serving = _serve(server, sock, grace, startup, shutdown, on_stop, prepare, on_serving)
    try:
        import uvloop
    except ImportError:  # not on Windows: the standard loop serves too
        return asyncio.run(serving)
    return uvloop.run(serving)


async def _serve(server: Server, sock: socket.socket, grace: float,
                 startup: Callable[[], Awaitable[None]], shutdown: Callable[[], Awaitable[None]],
                 on_stop: Callable[[], None] | None,
                 prepare: Callable[[], Awaitable[None]] | None,
                 on_serving: Callable[[], None] | None) -> int:
    loop = asyncio.get_running_loop()
    if prepare is not None:
        await prepare()
    try:
        await startup()
    except Exception:
        logger.exception("startup failed")
        sock.close()
        return 1
    stopped = asyncio.Event()

    def stop() -> None:
        if stopped.is_set():
            return
        from .server import note_stop_signal

        note_stop_signal()  # the shutdown gets what is left of the grace
        if on_stop is not None:
            on_stop()
        # Running requests, then the shutdown (which bounds its own
        # steps by ``grace``), must be done by then.
        loop.call_later(3 * grace + 5, _give_up, 3 * grace + 5)
        stopped.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    try:
        await server.serve(sock, BACKLOG)
        # What startup made (modules, tasks, the registry) lives as long as
        # the process: the cyclic collector need not scan it again. A full
        # collection under load then costs what requests made, not 2.6 ms
        # per 22,000 objects of a 1,000-task bundle (the p99 shows it).
        gc.freeze()
        if on_serving is not None:  # before any request is read
            on_serving()
        await stopped.wait()
        await server.shutdown(grace)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    try:
        await shutdown()
    except Exception:
        logger.exception("shutdown failed")
        return 1
    return 0


def _give_up(seconds: float) -> None:
    logger.error("shutdown did not finish within %.0f s; exiting", seconds)
    logging.shutdown()
    os._exit(1)
