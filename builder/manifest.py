"""The manifest: a project as plain data, for the runtime.

The same dict is used in-process (``taskpack task run``, the dev server)
and written into every bundle, so the runtime sees one format everywhere.
:meth:`taskpack.Registry.from_manifest` reads it.
"""

from __future__ import annotations

from typing import Any

from taskpack.history import DEFAULT_LIMIT, DEFAULT_PATH
from taskpack.registry import MANIFEST_VERSION

from .project import Project


def build_manifest(project: Project) -> dict[str, Any]:
    """The manifest for ``project``: JSON-serialisable, keys sorted.

    ``history`` carries ``[server] history_path``/``history_limit`` (with
    their defaults) for the registry's run history; ``queue`` the ``[queue]``
    table (the worker's ``concurrency`` and ``lease``), as written.
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
        "history": {
            "path": server.get("history_path", DEFAULT_PATH),
            "limit": server.get("history_limit", DEFAULT_LIMIT),
        },
        "queue": dict(project.preset_options("queue")),
    }

