"""The dashboard's JSON endpoints for tasks and runs (below ``/_taskpack/api/``).

=====================================  ===========================================
``GET  info``                          ``{"dev", "version", "timezone"}``:
                                       the page's first call (401 asks for the token)
``GET  tasks``                         tasks (options, schedules, last run, recent
                                       outcomes) and schedules (next fire times in
                                       the project's zone, how each preset deploys
                                       them)
``GET  runs?task=&outcome=&trigger=``  runs newest first, ``{"runs", "next"}``;
``&limit=&cursor=``                    ``next`` is the cursor of the older page
``GET  runs/{id}``                     ``{"run": ...}`` or 404
``POST tasks/{name}/run``              runs the task with the body's ``"payload"``
                                       as ``POST /_nitro/tasks/{name}`` does
                                       (``trigger`` http); ``{"ok", "status",
                                       "result" | "error", "run"}`` with the task
                                       API's status code; the body must be sent as
                                       ``application/json`` (415 otherwise)
``GET  job-counts``                    ``{"counts": {status: n}}`` (404: no queue)
=====================================  ===========================================

The queue's own endpoints (``/_taskpack/jobs``, :mod:`taskpack.web.jobs`)
list, show, retry and cancel jobs; the page calls them directly.

Bad query values are 400 with the API's error shape.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from itertools import islice
from typing import Any

from .. import __version__
from ..cron import CronError, CronExpr, zone
from ..errors import TaskError
from ..http import HttpResponse, error_response, json_response
from ..options import TaskOptions
from ..registry import Registry
from ..store import OUTCOMES, StoreError
from . import live
from .app import Router, WebRequest
from .runs import RunSource

TRIGGERS = ("manual", "http", "schedule", "spawn", "job")
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
RECENT = 20
"""Runs per task in the listing's sparkline."""
NEXT_FIRES = 5


def add_routes(router: Router) -> None:
    router.add("GET", "info", info)
    router.add("GET", "tasks", tasks)
    router.add("GET", "runs", runs)
    router.add("GET", "runs/{id}", run_detail)
    router.add("POST", "tasks/{name}/run", run_task)
    router.add("GET", "job-counts", job_counts)


async def info(request: WebRequest) -> HttpResponse:
    dashboard = request.dashboard
    return json_response(200, {"dev": dashboard.dev, "version": __version__,
                                "timezone": dashboard.registry.timezone})


async def job_counts(request: WebRequest) -> HttpResponse:
    """``{"counts": {status: n}}`` from the store; 404 where there is no queue."""
    counts = await live.job_counts(request.dashboard.registry)
    if counts is None:
        return error_response(404, "this server has no job queue")
    return json_response(200, {"counts": counts})


# -- tasks ---------------------------------------------------------------------


async def tasks(request: WebRequest) -> HttpResponse:
    dashboard = request.dashboard
    registry = dashboard.registry
    now = datetime.now(UTC)
    schedules = [schedule_view(entry, registry.timezone, now) for entry in dashboard.schedules()]
    loaded = await load_tasks(registry)
    source = dashboard.runs
    last = await source.last_runs()
    names = list(registry.entries)
    pages = await asyncio.gather(*(source.list_runs(task=name, limit=RECENT) for name in names))
    listing = []
    for name, page in zip(names, pages, strict=True):
        entry = registry.entries[name]
        options, problem = loaded[name]
        run = last.get(name)
        listing.append({
            "name": name,
            "description": entry.description,
            "options": options,
            "loadError": problem,
            "schedules": [s["cron"] for s in schedules if name in s["tasks"]],
            "lastRun": None if run is None else run.to_dict(),
            "recent": [{"id": r.id, "outcome": r.outcome, "duration_ms": r.duration_ms,
                        "started_at": r.started_at} for r in page.runs],
        })
    return json_response(200, {"timezone": registry.timezone, "now": now.isoformat(),
                                "tasks": listing, "schedules": schedules})


async def load_tasks(registry: Registry) -> dict[str, tuple[dict[str, Any] | None, str | None]]:
    """Each task's effective options (``define_task`` with the config's laid
    over), or why it cannot be loaded (whatever its module raises). Modules
    are imported off the event loop when the registry has threads."""
    def import_all() -> dict[str, str]:
        problems = {}
        for name in registry.entries:
            try:
                registry.get(name)
            except TaskError as exc:
                problems[name] = exc.message
            except (Exception, SystemExit) as exc:  # the module's own code failed
                problems[name] = f"importing the task failed: {type(exc).__name__}: {exc}"
        return problems

    problems = await asyncio.to_thread(import_all) if registry.threads else import_all()
    found: dict[str, tuple[dict[str, Any] | None, str | None]] = {}
    for name in registry.entries:
        if name in problems:
            found[name] = (None, problems[name])
            continue
        try:
            found[name] = (describe_options(registry.runner(name).options), None)
        except TaskError as exc:
            found[name] = (None, exc.message)
    return found


def describe_options(options: TaskOptions) -> dict[str, Any]:
    """The options a user set, as JSON: retries, timeout, concurrency and
    the payload schema (its JSON Schema when it is a pydantic model)."""
    schema = options.source.get("payload_schema")
    json_schema = None
    make = getattr(schema, "model_json_schema", None)
    if callable(make):
        try:
            json_schema = make()
        except Exception:  # a model pydantic cannot describe: validation still works
            json_schema = None
    return {
        "retries": options.retry.max_attempts - 1,
        "timeout": options.timeout,
        "concurrency": options.concurrency,
        "max_concurrency": options.max_concurrency,
        "payload_schema": None if schema is None else getattr(schema, "__name__", "callable"),
        "json_schema": json_schema,
    }


def schedule_view(entry: Mapping[str, Any], timezone: str, now: datetime) -> dict[str, Any]:
    """A manifest schedule with its next fire times (ISO, in the project's
    zone); ``description`` and ``deployed`` are passed on when present."""
    view: dict[str, Any] = {"cron": entry["cron"], "tasks": list(entry["tasks"]),
                            "description": entry.get("description"),
                            "deployed": entry.get("deployed"), "timezone": timezone}
    try:
        tz = zone(timezone)
        fires = islice(CronExpr.parse(entry["cron"]).iter_after(now, tz), NEXT_FIRES)
        view["next"] = [fire.astimezone(tz).isoformat() for fire in fires]
    except (CronError, ValueError) as exc:
        view["next"], view["error"] = [], str(exc)
    return view


# -- runs ------------------------------------------------------------------------


async def runs(request: WebRequest) -> HttpResponse:
    outcome, trigger = request.arg("outcome"), request.arg("trigger")
    if outcome is not None and outcome not in OUTCOMES:
        return error_response(400, f"outcome must be one of {', '.join(OUTCOMES)}, "
                                   f"got {outcome!r}")
    if trigger is not None and trigger not in TRIGGERS:
        return error_response(400, f"trigger must be one of {', '.join(TRIGGERS)}, "
                                   f"got {trigger!r}")
    text = request.arg("limit")
    limit = DEFAULT_LIMIT
    if text is not None:
        limit = int(text) if text.isdigit() else 0
        if not 1 <= limit <= MAX_LIMIT:
            return error_response(400, f"limit must be an integer from 1 to {MAX_LIMIT}, "
                                       f"got {text!r}")
    page = await request.dashboard.runs.list_runs(
        task=request.arg("task"), outcome=outcome, trigger=trigger, limit=limit,
        cursor=request.arg("cursor"))
    return json_response(200, {"runs": [run.to_dict() for run in page.runs],
                               "next": page.next_cursor})


async def run_detail(request: WebRequest) -> HttpResponse:
    run = await request.dashboard.runs.get_run(request.params["id"])
    if run is None:
        return error_response(404, f"no run {request.params['id']!r}")
    return json_response(200, {"run": run.to_dict()})


async def run_task(request: WebRequest) -> HttpResponse:
    """Run through the task API's own code path (same payload rules, errors
    and trigger), then look up the run it recorded."""
    name = request.params["name"]
    kind = request.http.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind != "application/json":
        # A JSON content type cannot be sent cross-origin without a CORS
        # preflight, which this server never grants: no other page can run tasks.
        return error_response(415, "send the payload as Content-Type: application/json")
    dashboard = request.dashboard
    started = time.time()
    response = await dashboard.api.run(name, request.http.__class__(
        method="POST", path=request.http.path, headers=request.http.headers,
        body=request.http.body, client_host=request.http.client_host))
    data = response.json()
    envelope: dict[str, Any] = {"ok": response.status == 200, "status": response.status}
    envelope["result" if response.status == 200 else "error"] = data
    envelope["run"] = None
    if name in dashboard.registry:
        envelope["run"] = await recorded_run(dashboard.runs, name, started)
    return json_response(response.status, envelope)


async def recorded_run(source: RunSource, name: str, started: float) -> dict[str, Any] | None:
    """The run of ``name`` that started first at or after ``started``, once
    stored; None when the store cannot tell (the run happened all the same:
    its answer never turns into an error here)."""
    try:
        await source.flush(2.0)
        page = await source.list_runs(task=name, limit=5)
    except StoreError:
        return None
    mine = [run for run in page.runs if run.started_at >= started - 0.001]
    return mine[-1].to_dict() if mine else None
