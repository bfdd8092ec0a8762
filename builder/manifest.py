"""The manifest: a project as plain data, for the runtime.

The same dict is used in-process (``taskpack task run``, the dev server)
and written into every bundle, so the runtime sees one format everywhere.
:meth:`taskpack.Registry.from_manifest` reads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from taskpack.cron import CronExpr
from taskpack.registry import MANIFEST_VERSION
from taskpack.store import DEFAULT_HISTORY_LIMIT

from .cron_describe import describe
from .dialects import CronPlatform
from .project import Project, Schedule


def build_manifest(project: Project, *, dashboard: bool = False) -> dict[str, Any]:
    """The manifest for ``project``: JSON-serialisable, keys sorted.

    ``store`` carries ``[store] url`` (None: the SQLite default, unless
    ``$TASKPACK_DATABASE_URL`` says otherwise at runtime), ``[server]
    history_limit`` and the deprecated ``[server] history_path`` (a SQLite
    file used when no URL is set; see :func:`taskpack.store.urls.resolve_url`);
    ``queue`` the ``[queue]`` table (the worker's ``concurrency`` and
    ``lease``), as written. With ``dashboard`` (``taskpack dev``, built
    servers with ``[server] dashboard = true``) each schedule also carries
    what the dashboard shows and the runtime cannot compute (it never
    imports the builder or the presets): its ``description`` and, per cron
    platform, how the presets using it deploy the schedule
    (:func:`deployments`).
    """
    server = project.preset_options("server")
    schedules = [{"cron": s.cron, "tasks": list(s.tasks)} for s in project.schedules]
    if dashboard:
        platforms = preset_platforms()
        for entry, schedule in zip(schedules, project.schedules, strict=True):
            entry.update(schedule_details(schedule, project.config.timezone, platforms))
    return {
        "version": MANIFEST_VERSION,
        "timezone": project.config.timezone,
        "tasks": {
            task.name: {
                "handler": task.handler,
                "description": task.description,
                "options": dict(sorted(task.options.items())),
            }
            for task in project.tasks
        },
        "schedules": schedules,
        "store": {
            "url": project.preset_options("store").get("url"),
            "history_path": server.get("history_path"),
            "history_limit": server.get("history_limit", DEFAULT_HISTORY_LIMIT),
        },
        "queue": dict(project.preset_options("queue")),
    }



Platforms = Sequence[tuple[CronPlatform, tuple[str, ...]]]


def preset_platforms() -> Platforms:
    """Each cron platform with the names of the presets that deploy to it,
    in preset order. Imported here, not at the top: the presets import the
    builder."""
    from taskpack.presets import known_presets

    found: dict[int, tuple[CronPlatform, list[str]]] = {}
    for preset in known_presets():
        platform = preset.cron_platform
        found.setdefault(id(platform), (platform, []))[1].append(preset.name)
    return [(platform, tuple(names)) for platform, names in found.values()]


def schedule_details(schedule: Schedule, timezone: str, platforms: Platforms) -> dict[str, Any]:
    """``description`` (plain English) and ``deployed``: for each platform,
    ``{"platform", "presets", "ok", "cron" | "error", ["warning"]}``."""
    expr = CronExpr.parse(schedule.cron)
    return {
        "description": describe(expr),
        "deployed": [{**platform.explain(expr, timezone), "presets": list(names)}
                     for platform, names in platforms],
    }
