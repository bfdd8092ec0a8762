"""The job API under ``/_taskpack/jobs`` (DESIGN §10), an
:class:`~taskpack.http.Extension` of the task API, so it has the task API's
access policy (loopback in dev, the bearer token in built servers):

* ``POST /_taskpack/jobs`` with ``{"task", "payload", "delay", "run_at",
  "key", "key_mode", "queue", "priority"}`` (only ``task`` required;
  ``delay`` in seconds, ``run_at`` epoch seconds or an ISO 8601 time with
  its offset) → 202 ``{"id", "status", "run_at"}``; 404 unknown task
  (Nitro's message), 422 payload refused by the task's schema (with
  ``errors``), 400 bad body;
* ``GET /_taskpack/jobs?status=&task=&limit=&cursor=`` → ``{"jobs": [...],
  "next_cursor": str | null}``, newest first (``limit`` 1 to 1000, default 50);
* ``GET /_taskpack/jobs/{id}`` → the job (status, attempts, last error,
  traceback, timestamps, result), 404 unknown;
* ``POST /_taskpack/jobs/{id}/retry`` (a ``failed`` or ``cancelled`` job,
  else 409) and ``POST /_taskpack/jobs/{id}/cancel`` (a ``pending`` or
  ``running`` job, else 409) → the job.

A store that is down answers 503.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from ..errors import TaskError
from ..http import (
    TASKPACK_PREFIX,
    HttpRequest,
    HttpResponse,
    error_response,
    json_kind,
    json_response,
)
from ..queue.enqueue import new_job
from ..queue.notify import job_changed
from ..registry import Registry
from ..store import JOB_STATUSES, Job, Store, StoreError, StoreUnavailable

PREFIX = TASKPACK_PREFIX + "/jobs"
DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
BODY_KEYS = ("task", "payload", "delay", "run_at", "key", "key_mode", "queue", "priority")
ACTIONS = {"retry": ("failed", "cancelled"), "cancel": ("pending", "running")}


class BadRequest(ValueError):
    """A 400: ``str()`` says what is wrong."""


class JobsApi:
    """The job API over the store of the registry ``registry()`` returns
    when a request arrives (the dev server replaces it on reload)."""

    prefix = PREFIX
    methods = ("GET", "POST")

    def __init__(self, registry: Callable[[], Registry]) -> None:
        self.registry = registry

    @property
    def store(self) -> Store:
        return self.registry().store

    async def handle(self, request: HttpRequest) -> HttpResponse:
        rest = request.path[len(PREFIX):].strip("/")
        parts = rest.split("/") if rest else []
        try:
            if not parts:
                if request.method == "POST":
                    return await self.enqueue(request)
                return await self.listing(request)
            if len(parts) == 1 and request.method == "GET":
                return await self.show(parts[0])
            if len(parts) == 2 and parts[1] in ACTIONS and request.method == "POST":
                return await self.act(parts[0], parts[1])
        except StoreUnavailable as exc:
            return error_response(503, f"the job store is unavailable: {exc}")
        except StoreError as exc:
            return error_response(500, f"the job store failed: {exc}")
        allowed = "POST" if len(parts) == 2 else "GET"
        if len(parts) > 2 or (len(parts) == 2 and parts[1] not in ACTIONS):
            return error_response(404, f"no route for {request.path}")
        return error_response(405, f"method {request.method} is not allowed here",
                              {"allow": allowed})

    async def enqueue(self, request: HttpRequest) -> HttpResponse:
        """``POST /_taskpack/jobs``."""
        try:
            args = parse_body(request.body)
            job = new_job(registry=self.registry(), **args)
        except TaskError as exc:
            return error_response(exc.status_code, exc.message, **exc.details())
        except (BadRequest, TypeError, ValueError) as exc:
            return error_response(400, str(exc))
        stored = await self.store.enqueue(job)
        job_changed(stored)
        return json_response(202, {"id": stored.id, "status": stored.status,
                                   "run_at": stored.run_at})

    async def listing(self, request: HttpRequest) -> HttpResponse:
        """``GET /_taskpack/jobs``."""
        query = dict(request.query)
        status = query.get("status") or None
        if status is not None and status not in JOB_STATUSES:
            return error_response(400, f"status must be one of {', '.join(JOB_STATUSES)}, "
                                  f"got {status!r}")
        text = query.get("limit") or str(DEFAULT_LIMIT)
        limit = int(text) if text.isdigit() else 0
        if not 1 <= limit <= MAX_LIMIT:
            return error_response(400, f"limit must be an integer from 1 to {MAX_LIMIT}, "
                                  f"got {text!r}")
        try:
            jobs, cursor = await self.store.list_jobs(
                status=status, task=query.get("task") or None, limit=limit,
                cursor=query.get("cursor") or None)
        except ValueError as exc:  # a cursor that is not one of ours
            return error_response(400, f"cursor: {exc}")
        return json_response(200, {"jobs": [job.to_dict() for job in jobs],
                                   "next_cursor": cursor})

    async def show(self, job_id: str) -> HttpResponse:
        """``GET /_taskpack/jobs/{id}``."""
        job = await self.store.get_job(job_id)
        if job is None:
            return _unknown(job_id)
        return json_response(200, job.to_dict())

    async def act(self, job_id: str, action: str) -> HttpResponse:
        """``POST /_taskpack/jobs/{id}/retry|cancel``."""
        job = await self.store.get_job(job_id)
        if job is None:
            return _unknown(job_id)
        allowed = ACTIONS[action]
        if job.status not in allowed:
            return error_response(409, f"job {job_id} is {job.status}; only "
                                  f"{' or '.join(allowed)} jobs can be {action_past(action)}")
        changed: Job | None = await (self.store.retry(job_id) if action == "retry"
                                     else self.store.cancel(job_id))
        if changed is None:
            return _unknown(job_id)
        job_changed(changed)
        return json_response(200, changed.to_dict())


def action_past(action: str) -> str:
    return "retried" if action == "retry" else "cancelled"


def _unknown(job_id: str) -> HttpResponse:
    return error_response(404, f"no job {job_id!r}")


def parse_body(body: bytes) -> dict[str, Any]:
    """``new_job`` keyword arguments from a ``POST /_taskpack/jobs`` body;
    :class:`BadRequest` when it is not the documented JSON object."""
    try:
        data = json.loads(body.decode("utf-8")) if body.strip() else None
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest(f"request body must be a JSON object with \"task\", got "
                         f"{json_kind(data)}")
    unknown = sorted(set(data) - set(BODY_KEYS))
    if unknown:
        raise BadRequest(f"unknown field {unknown[0]!r} (known: {', '.join(BODY_KEYS)})")
    task = data.get("task")
    if not isinstance(task, str) or not task:
        raise BadRequest('"task" must be a task name')
    payload = data.get("payload")
    if payload is not None and not isinstance(payload, Mapping):
        raise BadRequest(f'"payload" must be a JSON object, got {json_kind(payload)}')
    args: dict[str, Any] = {"name": task, "payload": payload}
    for key in ("key", "queue", "key_mode"):
        if data.get(key) is not None:
            if not isinstance(data[key], str):
                raise BadRequest(f'"{key}" must be a string, got {json_kind(data[key])}')
            args[key] = data[key]
    for key in ("delay", "priority"):
        value = data.get(key)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise BadRequest(f'"{key}" must be a number, got {json_kind(value)}')
            args[key] = value
    run_at = data.get("run_at")
    if isinstance(run_at, str):
        try:
            args["run_at"] = datetime.fromisoformat(run_at)
        except ValueError:
            raise BadRequest(f'"run_at": not an ISO 8601 time: {run_at!r}') from None
    elif run_at is not None:
        if isinstance(run_at, bool) or not isinstance(run_at, int | float):
            raise BadRequest(f'"run_at" must be epoch seconds or an ISO 8601 time, got '
                             f"{json_kind(run_at)}")
        args["run_at"] = run_at
    return args
