"""The AWS Lambda handler of a bundle (preset ``aws_lambda``).

The generated ``src/app.py`` builds one :class:`LambdaHandler` per
execution environment and exposes it as ``handler(event, context)``. Two
kinds of event arrive:

* **A schedule's fire** (EventBridge Scheduler, one ``ScheduleV2`` per
  deployed schedule): the event is the schedule's ``Input``, which the
  build writes as ``{"taskpack": "schedule", "schedule": <the deployed
  cron(...) string>, "scheduledTime": "<aws.scheduler.scheduled-time>",
  "attempt": "<aws.scheduler.attempt-number>"}``; the Scheduler substitutes
  the context attributes (``2026-03-22T18:59:00Z``). The schedule's tasks
  run through :func:`taskpack.fire.run_fire` with ``scheduledTime`` = that
  time in epoch ms — the time the fire was *scheduled* for, never the
  invocation time, so a retried or late delivery carries the same value
  (tasks use it as their idempotency key: Lambda delivers at least once).
  A failing task is logged and reported in the result
  (``{"success": bool, "tasks": {name: "ok"|"error"}}``), not raised: a
  raise would make the Scheduler retry the whole fire, re-running the tasks
  that succeeded. An event this module cannot read (no or unsubstituted
  ``scheduledTime``, an unknown schedule) raises ``ValueError``, so the
  invocation fails loudly.
* **An HTTP request to the Function URL** (payload format 2.0, detected by
  ``version == "2.0"`` and ``requestContext.http``): answered by the task
  API (:mod:`taskpack.http`, the same core as every preset) when the build
  enabled it, behind ``Authorization: Bearer $TASKPACK_TASKS_TOKEN`` (500
  while the variable is unset: closed, never open); 404 otherwise.

Work registered with ``context.wait_until`` finishes before the handler
returns (Lambda freezes the environment after the return). One event loop
lives as long as the execution environment, so the registry's per-loop
state (dedupe, concurrency limits) holds across warm invocations.

Runs are recorded in the store of :func:`store_url`: a PostgreSQL store
when one is configured (``$TASKPACK_DATABASE_URL``, else ``[store] url``),
shared by every execution environment; otherwise ``memory://``, one per
execution environment (Lambda has no lasting, shared disk, so a SQLite
URL is not used). The store is opened by the first event (a store that
cannot be opened fails that invocation) and what it buffers is written
before each invocation returns (within :data:`FLUSH_TIMEOUT` seconds).
Standard library only: this module is bundled into the output.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote

from ..fire import run_fire
from ..http import (
    TASKS_TOKEN_ENV,
    HttpRequest,
    HttpResponse,
    TaskApi,
    error_response,
    handle,
    lower_headers,
    secret_bearer_token,
)
from ..registry import Registry
from ..store.urls import resolve_url
from . import epoch_ms

logger = logging.getLogger("taskpack.aws_lambda")

EVENT_MARKER = "schedule"
SCHEDULED_TIME_PLACEHOLDER = "<aws.scheduler.scheduled-time>"
ATTEMPT_PLACEHOLDER = "<aws.scheduler.attempt-number>"
SHARED_SCHEMES = ("postgresql", "postgres")
FLUSH_TIMEOUT = 5.0


def store_url(manifest: Mapping[str, Any], environ: Mapping[str, str]) -> str:
    """The function's store URL: the configured one
    (:func:`taskpack.store.urls.resolve_url`) when it is PostgreSQL, else
    ``memory://`` (a configured URL of another kind is logged as unused)."""
    url, source = resolve_url(environ, manifest.get("store"))
    if url.partition("://")[0] in SHARED_SCHEMES:
        return url
    if source != "the default store" and not url.startswith("memory:"):
        logger.warning("taskpack: %s is not a PostgreSQL URL; runs are kept in memory (Lambda "
                       "has no shared disk)", source)
    return "memory://"


def schedule_input(schedule: str) -> dict[str, str]:
    """The Scheduler ``Input`` of the schedule deployed as ``schedule``
    (the build writes it into ``template.yaml`` as JSON)."""
    return {"taskpack": EVENT_MARKER, "schedule": schedule,
            "scheduledTime": SCHEDULED_TIME_PLACEHOLDER, "attempt": ATTEMPT_PLACEHOLDER}


class LambdaHandler:
    """What ``src/app.py`` calls: ``schedules`` maps each deployed
    ``cron(...)`` string to the task names it runs; ``tasks_api`` says
    whether the Function URL serves the task API; ``environ`` holds the
    token (read per request)."""

    def __init__(self, registry: Registry, schedules: Mapping[str, Iterable[str]], *,
                 tasks_api: bool, environ: Mapping[str, str] = os.environ) -> None:
        self.registry = registry
        self.schedules = {cron: tuple(names) for cron, names in schedules.items()}
        self.tasks_api = tasks_api
        self.environ = environ
        self._loop: asyncio.AbstractEventLoop | None = None
        self._opened = False

    def __call__(self, event: Any, context: Any = None) -> dict[str, Any]:
        """The Lambda entry point (``handler = LambdaHandler(...)``)."""
        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(self.handle(event))

    async def handle(self, event: Any) -> dict[str, Any]:
        """Answer one event (see the module docstring); background work
        registered by the tasks is drained and the runs written before
        returning."""
        if not self._opened:
            await self.registry.open()
            self._opened = True
        try:
            if is_function_url_event(event):
                return await self.http(event)
            if isinstance(event, dict) and event.get("taskpack") == EVENT_MARKER:
                return await self.scheduled(event)
            shape = sorted(event) if isinstance(event, dict) else type(event).__name__
            raise ValueError("taskpack: not a Function URL request nor a taskpack schedule "
                             f"event ({shape})")
        finally:
            await self.registry.drain()
            if not await self.registry.store.flush(FLUSH_TIMEOUT):
                logger.error("taskpack: the store did not take this invocation's runs within "
                             "%ss", FLUSH_TIMEOUT)

    async def scheduled(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Run the fire of ``event["schedule"]`` at ``event["scheduledTime"]``."""
        schedule = event.get("schedule")
        names = self.schedules.get(schedule) if isinstance(schedule, str) else None
        if names is None or not isinstance(schedule, str):
            known = ", ".join(map(repr, self.schedules)) or "none"
            raise ValueError(f"taskpack: unknown schedule {schedule!r} (known: {known})")
        scheduled_ms = parse_scheduled_time(event.get("scheduledTime"))
        attempt = event.get("attempt")
        if attempt not in (None, "1", 1):
            logger.warning("taskpack: %s fire at %s: delivery attempt %s", schedule,
                           event.get("scheduledTime"), attempt)
        results = await run_fire(self.registry, dict.fromkeys(names, schedule), scheduled_ms,
                                 logger=logger)
        return {"success": all(o == "ok" for o in results.values()), "tasks": results}

    async def http(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Answer a Function URL request (payload format 2.0)."""
        try:
            request = request_from_event(event)
        except ValueError as exc:
            return response_to_event(error_response(400, str(exc)))
        if not self.tasks_api:
            return response_to_event(error_response(
                404, "the task API is off; enable it with [aws_lambda] tasks_api = true"))
        policy = secret_bearer_token(
            lambda: self.environ.get(TASKS_TOKEN_ENV),
            f"{TASKS_TOKEN_ENV} is not set: add it to the function's environment variables to use "
            "the task API",
        )
        api = TaskApi(self.registry, policy=policy)
        response = await handle(api, request)
        if response is None:
            response = error_response(404, f"no route for {request.path}")
        return response_to_event(response)


def parse_scheduled_time(value: Any) -> int:
    """The Scheduler's ``<aws.scheduler.scheduled-time>`` (ISO 8601 UTC, e.g.
    ``2026-03-22T18:59:00Z``) as epoch milliseconds; ``ValueError`` when it
    is missing, unsubstituted or not a time."""
    if not isinstance(value, str) or value == SCHEDULED_TIME_PLACEHOLDER:
        raise ValueError(f"taskpack: scheduledTime {value!r} is not the Scheduler's scheduled "
                         f"time (the schedule's Input must carry {SCHEDULED_TIME_PLACEHOLDER})")
    try:
        return epoch_ms(value)
    except ValueError as exc:
        raise ValueError(f"taskpack: scheduledTime {value!r} {exc}") from None


def is_function_url_event(event: Any) -> bool:
    """Whether ``event`` is a Function URL (payload format 2.0) request."""
    return (isinstance(event, dict) and event.get("version") == "2.0"
            and isinstance(event.get("requestContext"), dict)
            and isinstance(event["requestContext"].get("http"), dict))


def request_from_event(event: Mapping[str, Any]) -> HttpRequest:
    """The :class:`HttpRequest` of a Function URL event: method and source
    IP from ``requestContext.http``, ``rawPath`` percent-decoded,
    ``rawQueryString`` parsed, headers (Lambda joins repeats with commas),
    the body decoded when ``isBase64Encoded``. ``ValueError`` for a body
    that is not valid base64."""
    http = event["requestContext"]["http"]
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            data = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("the request body is not valid base64") from None
    else:
        data = body.encode("utf-8")
    headers = event.get("headers") or {}
    return HttpRequest(
        method=str(http.get("method", "GET")).upper(),
        path=unquote(event.get("rawPath") or http.get("path") or "/"),
        query=parse_qsl(event.get("rawQueryString") or "", keep_blank_values=True),
        headers=lower_headers(headers.items()),
        body=data,
        client_host=http.get("sourceIp"),
    )


def response_to_event(response: HttpResponse) -> dict[str, Any]:
    """A Function URL response: ``statusCode``, ``headers``, the body as
    text (base64 when it is not UTF-8) and ``isBase64Encoded``."""
    try:
        body, encoded = response.body.decode("utf-8"), False
    except UnicodeDecodeError:
        body, encoded = base64.b64encode(response.body).decode("ascii"), True
    return {"statusCode": response.status, "headers": dict(response.headers), "body": body,
            "isBase64Encoded": encoded}
