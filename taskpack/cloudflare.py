"""The runtime side of a Cloudflare Python Worker (preset ``cloudflare_module``).

The generated ``src/entry.py`` defines ``class Default(WorkerEntrypoint)``
and forwards both events here, with plain values taken from the JS objects:

* ``scheduled``: the trigger's cron string (``controller.cron``, exactly as
  emitted into the wrangler config) is looked up in the dispatch table the
  builder generated; its tasks run in parallel, each with
  ``payload={"scheduledTime": <controller.scheduledTime>}`` and a context
  carrying ``env``, ``ctx`` and ``wait_until`` (→ ``ctx.waitUntil``). A
  failing task is logged with its name and does not stop its siblings; an
  unknown cron string is logged and ignored.
* ``fetch``: the HTTP task API (:mod:`taskpack.http`) when the build enabled
  it, guarded by ``Authorization: Bearer <TASKPACK_TASKS_TOKEN>`` (a Worker
  secret, read from ``env`` per request); a 404 for everything otherwise.
* ``queue``: the jobs of a batch from the Worker's Cloudflare Queue
  (:func:`taskpack.queue.cloudflare.consume`: ack, retry with the task's
  backoff, dead letters).

Each event binds ``enqueue_task`` to the Queue producer ``env.TASKPACK_JOBS``
(``[cloudflare] queue`` in the config); without it, ``enqueue_task`` raises
one error saying so.

Nothing here imports the Workers SDK: the entry converts SDK objects, so
this module stays plain Python (and testable outside Pyodide).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

from .fire import Outcome, run_fire
from .http import (
    PREFIX,
    TASKS_TOKEN_ENV,
    HttpRequest,
    HttpResponse,
    TaskApi,
    api_off,
    bearer_token,
    configured_secret,
    error_response,
    handle,
)
from .queue.binding import bind_queue
from .queue.cloudflare import JOBS_BINDING, CloudflareQueue, consume
from .registry import Registry
from .task import TaskContext

logger = logging.getLogger("taskpack.cloudflare")

NO_QUEUE = ("no Cloudflare Queue is bound to this Worker (env.TASKPACK_JOBS): set "
            '[cloudflare] queue = "<queue name>" in the taskpack config and rebuild')

WaitUntil = Callable[[Any], None]


class Worker:
    """What the generated entry delegates to.

    ``triggers`` maps each emitted cron string to the task names it runs;
    ``tasks_api`` says whether ``fetch`` serves the task API. The registry
    must run sync tasks inline (``threads=False``): Pyodide has no threads.
    """

    def __init__(
        self, registry: Registry, triggers: Mapping[str, Iterable[str]], *, tasks_api: bool
    ) -> None:
        if registry.threads:
            raise ValueError("Worker: the registry must be built with threads=False")
        self.registry = registry
        self.triggers = {cron: tuple(names) for cron, names in triggers.items()}
        self.tasks_api = tasks_api

    async def scheduled(
        self, cron: str, scheduled_time: float, *, env: Any, ctx: Any
    ) -> dict[str, Outcome]:
        """Run the tasks of trigger ``cron`` (see :func:`taskpack.fire.run_fire`);
        the outcome per task name (``"ok"`` or ``"error"``), empty for an
        unknown trigger."""
        bind_env(env)
        names = self.triggers.get(cron)
        if names is None:
            logger.warning(
                "taskpack: no tasks for cron trigger %r (known: %s); ignored",
                cron,
                ", ".join(map(repr, self.triggers)) or "none",
            )
            return {}
        wait_until = _wait_until(ctx)
        return await run_fire(
            self.registry, dict.fromkeys(names, cron), _epoch_ms(scheduled_time), logger=logger,
            context=lambda trigger: TaskContext(trigger=trigger, wait_until=wait_until,
                                                env=env, ctx=ctx),
        )

    async def fetch(
        self, request: HttpRequest, read_body: BodyReader, *, env: Any, ctx: Any
    ) -> HttpResponse:
        """Answer an HTTP request. ``request`` comes without its body;
        ``read_body`` is called only once the request was admitted and its
        declared size is within the API's limit. Runs get a context with
        ``env``, ``ctx`` and ``wait_until`` as scheduled runs do."""
        if not self.tasks_api:
            on_api = request.path == PREFIX or request.path.startswith(PREFIX + "/")
            return api_off("cloudflare") if on_api else error_response(404, "not found")
        bind_env(env)
        token = configured_secret(getattr(env, TASKS_TOKEN_ENV, None))
        if token is None:
            logger.error("taskpack: the task API is on but the %s secret is not set",
                         TASKS_TOKEN_ENV)
            return error_response(
                500,
                f"the task API is enabled but the Worker secret {TASKS_TOKEN_ENV} is not set "
                f"(npx wrangler secret put {TASKS_TOKEN_ENV})",
            )
        wait_until = _wait_until(ctx)
        api = TaskApi(
            self.registry,
            policy=bearer_token(token),
            context=lambda: TaskContext(trigger="http", wait_until=wait_until, env=env, ctx=ctx),
        )
        route = api.route(request.path)
        if route is None:
            return error_response(404, "not found")
        refused = api.admit(route, request)
        if refused is not None:
            return refused
        declared = request.headers.get("content-length", "")
        too_large = api.too_large(int(declared)) if declared.isdigit() else None
        if too_large is not None:
            return too_large
        response = await handle(api, replace(request, body=await read_body()))
        assert response is not None  # the route matched above
        return response


    async def queue(self, messages: Iterable[Any], *, env: Any, ctx: Any) -> dict[str, str]:
        """Run the jobs of a queue batch (see :mod:`taskpack.queue.cloudflare`);
        the action taken per message id."""
        bind_env(env)
        wait_until = _wait_until(ctx)
        return await consume(self.registry, messages, env=env, ctx=ctx,
                             context={"wait_until": wait_until})


def bind_env(env: Any) -> None:
    """Point ``enqueue_task`` at the Worker's Queue producer, if bound."""
    binding = getattr(env, JOBS_BINDING, None)
    bind_queue(CloudflareQueue(binding) if binding is not None else None, missing=NO_QUEUE)


BodyReader = Callable[[], Awaitable[bytes]]


def _epoch_ms(value: float) -> int | float:
    """``controller.scheduledTime`` arrives as a JS number: keep it an int."""
    return int(value) if float(value).is_integer() else value


def _wait_until(ctx: Any) -> Callable[[Awaitable[Any]], None]:
    """``ctx.waitUntil`` for Python awaitables: scheduled as a task first, so
    the platform receives a future it can await after the handler returns."""

    def wait_until(awaitable: Awaitable[Any]) -> None:
        ctx.waitUntil(asyncio.ensure_future(awaitable))

    return wait_until
