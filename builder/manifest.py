"""The manifest: a project as plain data, for the runtime.

The same dict is used in-process (``taskpack task run``, the dev server)
and written into every bundle, so the runtime sees one format everywhere.
:meth:`taskpack.Registry.from_manifest` reads it.
"""

from __future__ import annotations

import json
from typing import Any

from taskpack.registry import MANIFEST_VERSION

from .project import Project


def build_manifest(project: Project) -> dict[str, Any]:
    """The manifest for ``project``: JSON-serialisable, keys sorted."""
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
    }


def dump_manifest(manifest: dict[str, Any]) -> str:
    """Deterministic JSON text for a manifest (sorted keys, trailing newline)."""
    return json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
