"""The manifest: a project as plain data, for the runtime.

The same dict is used in-process (``taskpack task run``, the dev server)
and written into every bundle, so the runtime sees one format everywhere.
:meth:`taskpack.Registry.from_manifest` reads it.
"""

from __future__ import annotations

from typing import Any

from taskpack.registry import MANIFEST_VERSION
from taskpack.store import DEFAULT_HISTORY_LIMIT

from .project import Project


def build_manifest(project: Project) -> dict[str, Any]:
    """The manifest for ``project``: JSON-serialisable, keys sorted.

    ``store`` carries ``[store] url`` (None: the SQLite default, unless
    ``$TASKPACK_DATABASE_URL`` says otherwise at runtime), ``[server]
    history_limit`` and the deprecated ``[server] history_path`` (a SQLite
    file used when no URL is set); see :func:`taskpack.store.urls.resolve_url`.
    """
    server = project.preset_options("server")
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
        "schedules": [{"cron": s.cron, "tasks": list(s.tasks)} for s in project.schedules],
        "store": {
            "url": project.preset_options("store").get("url"),
            "history_path": server.get("history_path"),
            "history_limit": server.get("history_limit", DEFAULT_HISTORY_LIMIT),
        },
    }

