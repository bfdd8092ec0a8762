"""What the self-hosted presets (``server``, ``server_cluster``, ``asgi``)
share: validation, the ``[server]`` options, the bundle under
``<output>/server`` and the preview command.

Each of those presets is the same bundle with a different entry file
rendered from its template folder; the server logic itself lives in the
runtime (:mod:`taskpack.server`, :mod:`taskpack.cluster`), so the entry
files stay a few lines long.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from taskpack.builder.bundle import render, write_bundle
from taskpack.builder.errors import TaskpackError
from taskpack.builder.project import Project

BUNDLE_DIR = "server"
REQUIREMENTS = ("croniter", "uvicorn")
DEFAULT_GRACE = 30.0


def validate(project: Project) -> list[str]:
    """taskpack's own scheduler runs every schedule the project loads with
    (any time zone, seconds allowed; :func:`load_project` already refused
    what the cron dialect does not accept), so there is nothing to refuse."""
    return []


def emit(project: Project, out: Path, template: str, entry: str) -> None:
    """The bundle in ``out/server`` with ``entry`` rendered from ``template``."""
    base = out / BUNDLE_DIR
    write_bundle(project, base, requirements=REQUIREMENTS)
    options = project.preset_options("server")
    render(template, base / entry,
           tasks_api=repr(bool(options.get("tasks_api", False))),
           shutdown_grace=repr(float(options.get("shutdown_grace", DEFAULT_GRACE))))


def install_step(out: Path) -> str:
    """The command installing the bundle's requirements."""
    return f"pip install -r {out / BUNDLE_DIR / 'requirements.txt'}"


def preview(out: Path, entry: str) -> list[str]:
    """``taskpack preview``: this interpreter running the entry file, as
    production does; it needs the bundle's requirements installed."""
    missing = [name for name in REQUIREMENTS if importlib.util.find_spec(name) is None]
    if missing:
        raise TaskpackError(f"{', '.join(missing)} not installed in {sys.executable}; "
                            f"run `{install_step(out)}` first")
    return [sys.executable, str(out / BUNDLE_DIR / entry)]
