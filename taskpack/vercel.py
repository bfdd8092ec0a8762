"""The Vercel function: cron routes guarded by ``CRON_SECRET``, and the task API.

Vercel Cron Jobs call ``GET <path>`` on the production deployment with
``user-agent: vercel-cron/1.0``, ``x-vercel-cron-schedule: <expression>`` and,
when the project has a ``CRON_SECRET`` environment variable,
``Authorization: Bearer <CRON_SECRET>``. The ``vercel`` preset gives every
distinct schedule its own path (:func:`cron_path`), so dispatch never depends
on a header, and writes one :class:`CronRoute` per path into the generated
``api/index.py``.

A cron request is answered in this order:

1. ``CRON_SECRET`` set: the bearer token must match (constant-time) → else 401.
   ``CRON_SECRET`` unset: 500 with a message saying to set it (fail closed;
   Nitro fails open here) — unless the build allowed unauthenticated crons.
2. ``GET`` only → else 405.
3. ``x-vercel-cron-schedule``, when present, must equal the route's schedule
   → else 400 (a request meant for another schedule never runs these tasks).
4. The route's tasks run in parallel, each with
   ``payload={"scheduledTime": <now, epoch ms>}`` (taken per request); a
   failure is logged with the task's name and does not stop the others.
   Work registered with ``context.wait_until`` finishes before the response,
   which keeps the function alive for it. The answer is
   ``{"success": bool, "tasks": {name: "ok" | "error"}}``, 500 if any failed
   (so Vercel's logs show the run as failed).

The task API (``/_nitro/tasks``, :mod:`taskpack.http`) answers only when the
build enabled it, and then requires ``Authorization: Bearer
$TASKPACK_TASKS_TOKEN``; with the variable unset it answers 500 (closed).

``enqueue_task`` works only with ``TASKPACK_DATABASE_URL`` set to a
PostgreSQL URL: the job is written there for a ``taskpack worker`` running
elsewhere (Vercel runs no long-lived worker); without it, ``enqueue_task``
raises one error saying so (:data:`NO_QUEUE`).

Environment variables are read per request, from ``environ`` (``os.environ``
by default). Standard library only: this module is bundled into the output.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from .fire import run_fire
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
    asgi_app,
    bearer_token,
    configured_secret,
    error_response,
    json_response,
    request_head,
    secret_bearer_token,
    send_response,
)
from .queue.binding import bind_queue
from .queue.remote import StoreSink
from .registry import Registry
from .store.urls import DATABASE_URL_ENV

logger = logging.getLogger("taskpack.vercel")

CRON_PREFIX = "/_taskpack/cron/"
SCHEDULE_HEADER = "x-vercel-cron-schedule"
CRON_SECRET = "CRON_SECRET"


def cron_path(schedule: str) -> str:
    """The path a schedule (as deployed) is called on: stable for the same
    schedule string, distinct for different ones."""
    digest = hashlib.sha256(schedule.encode("utf-8")).hexdigest()[:16]
    return CRON_PREFIX + digest


@dataclass(frozen=True)
class CronRoute:
    """One Vercel cron job: its ``path``, the ``schedule`` string deployed in
    ``vercel.json`` (what Vercel sends back in ``x-vercel-cron-schedule``),
    and the task names it runs."""

    path: str
    schedule: str
    tasks: tuple[str, ...]


class CronDispatcher:
    """Answers requests for the cron paths; see the module docstring."""

    def __init__(
        self,
        registry: Registry,
        routes: Iterable[CronRoute],
        *,
        allow_unauthenticated: bool = False,
        environ: Mapping[str, str] = os.environ,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = registry
        self.routes = {route.path: route for route in routes}
        self.allow_unauthenticated = allow_unauthenticated
        self.environ = environ
        self.clock = clock

    async def handle(self, request: HttpRequest) -> HttpResponse | None:
        """The response for a cron path, or ``None`` for any other path."""
        route = self.routes.get(request.path)
        if route is None:
            return None
        refused = self._authorize(request)
        if refused is not None:
            logger.warning("cron %s refused: %d", route.path, refused.status)
            return refused
        if request.method != "GET":
            return error_response(405, f"method {request.method} is not allowed here",
                                  {"allow": "GET"})
        sent = request.headers.get(SCHEDULE_HEADER)
        if sent is not None and sent.strip() != route.schedule:
            return error_response(
                400,
                f"{SCHEDULE_HEADER} {sent!r} does not match this path's schedule "
                f"{route.schedule!r}",
            )
        return await self.run(route)

    def _authorize(self, request: HttpRequest) -> HttpResponse | None:
        secret = configured_secret(self.environ.get(CRON_SECRET))
        if secret is not None:
            return bearer_token(secret)(request)
        if self.allow_unauthenticated:
            return None
        return error_response(
            500,
            f"{CRON_SECRET} is not set: add it to the Vercel project's environment variables "
            "(Vercel then sends it with every cron request) and redeploy; or, to run crons "
            "without authentication, set [vercel] allow_unauthenticated_cron = true",
        )

    async def run(self, route: CronRoute) -> HttpResponse:
        """Run the route's tasks in parallel with a fresh ``scheduledTime``."""
        results = await run_fire(self.registry, dict.fromkeys(route.tasks, route.schedule),
                                 int(self.clock() * 1000), logger=logger)
        await self.registry.drain()
        success = all(outcome == "ok" for outcome in results.values())
        return json_response(200 if success else 500, {"success": success, "tasks": results})


def tasks_api_policy(
    enabled: bool, environ: Mapping[str, str] = os.environ
) -> Callable[[HttpRequest], HttpResponse | None]:
    """Who may use ``/_nitro/tasks`` on Vercel: nobody (404) unless
    ``enabled``; then bearer ``$TASKPACK_TASKS_TOKEN``, and 500 while the
    variable is unset (never open)."""

    token = secret_bearer_token(
        lambda: environ.get(TASKS_TOKEN_ENV),
        f"{TASKS_TOKEN_ENV} is not set: add it to the Vercel project's environment variables to "
        "use the task API",
    )

    def policy(request: HttpRequest) -> HttpResponse | None:
        if not enabled:
            return api_off("vercel")
        return token(request)

    return policy


NO_QUEUE = (
    "enqueue_task on Vercel needs a PostgreSQL store: set TASKPACK_DATABASE_URL to a "
    "postgresql:// URL in the project's environment variables and run `taskpack worker` "
    "with the same URL on a host that keeps running (Vercel runs no worker)"
)


def bind_store_queue(registry: Registry, environ: Mapping[str, str]) -> None:
    """Point ``enqueue_task`` at the PostgreSQL store of ``TASKPACK_DATABASE_URL``,
    or leave it unbound with :data:`NO_QUEUE` as the reason."""
    url = environ.get(DATABASE_URL_ENV, "").strip()
    if url.startswith(("postgresql:", "postgres:")):
        bind_queue(StoreSink(url, registry.root))
    else:
        bind_queue(None, missing=NO_QUEUE)


def vercel_app(
    registry: Registry,
    routes: Iterable[CronRoute],
    *,
    tasks_api: bool = False,
    allow_unauthenticated_cron: bool = False,
    environ: Mapping[str, str] = os.environ,
) -> ASGIApp:
    """The ASGI ``app`` of the generated ``api/index.py``: cron routes, the
    task API (policy above), 404 JSON for anything else."""
    crons = CronDispatcher(
        registry, routes, allow_unauthenticated=allow_unauthenticated_cron, environ=environ
    )
    bind_store_queue(registry, environ)

    async def cron_app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        response = await crons.handle(request_head(scope))
        if response is None:
            response = error_response(404, f"no route for {scope['path']}")
        await send_response(send, response)

    api = TaskApi(registry, policy=tasks_api_policy(tasks_api, environ))
    return asgi_app(api, fallback=cron_app)
