"""Preset ``cloudflare_module``: a Cloudflare Python Worker with Cron Triggers.

Output (``.output/`` by default)::

    wrangler.toml        (or the user's wrangler.jsonc/.json, merged)
    pyproject.toml       the project's dependencies, for pywrangler
    README.md            how to deploy
    src/entry.py         class Default(WorkerEntrypoint): scheduled + fetch
    src/taskpack/        the runtime
    src/taskpack_manifest.py, src/project/   the tasks and the project's modules

Each schedule is translated to Cloudflare's cron dialect (weekday names,
never digits: Cloudflare numbers weekdays 1-7 from Sunday); schedules that
mean the same are merged into one trigger, because Cloudflare refuses
duplicates. The entry dispatches on the exact emitted string
(``controller.cron``) through a table written at build time.

Platform checks: Cron Triggers run in UTC (another ``timezone`` is an
error), have no seconds field (an error), and the Free plan allows 5
triggers (more is a warning). See ``builder/wrangler.py`` for how the
user's own wrangler config is merged.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from taskpack import __version__
from taskpack.builder import bundle
from taskpack.builder.dialects import CLOUDFLARE, Trigger
from taskpack.builder.project import Project
from taskpack.layout import PROJECT_DIR

if TYPE_CHECKING:
    from taskpack.builder.wrangler import WorkerSettings, WranglerFile

name = "cloudflare_module"
aliases = ("cloudflare-module",)
summary = "a Cloudflare Python Worker with Cron Triggers"
cron_platform = CLOUDFLARE

ENTRY = "src/entry.py"
SOURCE_DIR = "src"
# A fixed date, never "today", so builds are reproducible. Raise it deliberately
# (Python Workers need 2025-08-14 or later for the WorkerEntrypoint class form).
DEFAULT_COMPATIBILITY_DATE = "2026-04-01"
FREE_PLAN_TRIGGERS = 5
PAID_PLAN_TRIGGERS = 250
WORKER_NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
QUEUE_NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
MAX_QUEUE_RETRIES = 100
"""Cloudflare's limit for a consumer's ``max_retries``; the default, so the
task's own ``retries`` decide (the Worker acks a job after its last attempt)."""
DATE_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$")


def validate(project: Project) -> list[str]:
    """Refuse what Cloudflare cannot run the same way; warnings to print
    (the trigger limit, wrangler values the merge replaces)."""
    warnings: list[str] = []
    triggers = _triggers(project)
    if len(triggers) > FREE_PLAN_TRIGGERS:
        warnings.append(
            f"{len(triggers)} cron triggers: Cloudflare's Free plan allows {FREE_PLAN_TRIGGERS} "
            f"(Paid: {PAID_PLAN_TRIGGERS}); the deploy fails on Free"
        )
    _check_sources(project)
    warnings.extend(_wrangler(project, triggers).notices)
    return warnings


def emit(project: Project, out: Path) -> None:
    """Write the Worker into ``out``."""
    triggers = _triggers(project)
    wrangler = _wrangler(project, triggers, out)
    base = out / SOURCE_DIR
    bundle.write_bundle(project, base, requirements=None)
    options = project.preset_options("cloudflare")
    tasks_api = bool(options.get("tasks_api", False))
    bundle.render(
        "cloudflare_module/entry.py.j2",
        out / ENTRY,
        version=__version__,
        triggers=bundle.literal({t.cron: list(t.tasks) for t in triggers}),
        tasks_api=tasks_api,
    )
    bundle.write_text(out / wrangler.filename, wrangler.text)
    _source, dependencies = bundle.project_requirements(project)
    worker_name = wrangler.name
    bundle.render(
        "cloudflare_module/pyproject.toml.j2",
        out / "pyproject.toml",
        name=worker_name,
        dependencies=dependencies,
    )
    bundle.render(
        "cloudflare_module/README.md.j2",
        out / "README.md",
        name=worker_name,
        version=__version__,
        deploy=deploy_command(bool(dependencies)),
        dependencies=dependencies,
        tasks_api=tasks_api,
        triggers=[(t.cron, t.tasks) for t in triggers],
        wrangler_file=wrangler.filename,
        project_dir=PROJECT_DIR,
    )


def next_steps(project: Project, out: Path) -> list[str]:
    """How to deploy the output at ``out``."""
    pyproject = tomllib.loads((out / "pyproject.toml").read_text(encoding="utf-8"))
    steps = [f"cd {out}", deploy_command(bool(pyproject["project"]["dependencies"]))]
    if project.preset_options("cloudflare").get("tasks_api", False):
        steps.append("npx wrangler secret put TASKPACK_TASKS_TOKEN   # the task API's bearer token")
    return steps


def deploy_command(has_dependencies: bool) -> str:
    """``npx wrangler deploy``, or pywrangler when packages must be vendored."""
    if has_dependencies:
        return "uvx --from workers-py pywrangler deploy"
    return "npx wrangler deploy"


# -- helpers --------------------------------------------------------------------


def _triggers(project: Project) -> tuple[Trigger, ...]:
    """The Cron Triggers: each schedule translated, those equal in meaning merged."""
    return CLOUDFLARE.triggers(project.schedules, project.config)


def _settings(project: Project, triggers: tuple[Trigger, ...]) -> WorkerSettings:
    from taskpack.builder.wrangler import WorkerSettings  # tomlkit: only when this preset runs

    options = project.preset_options("cloudflare")
    config = project.config
    explicit_name = options.get("name")
    if explicit_name is not None and not WORKER_NAME_RE.match(explicit_name):
        raise config.error(
            f"{explicit_name!r} is not a Worker name (lower-case letters, digits and dashes, "
            "at most 63, not starting or ending with a dash)",
            "cloudflare",
            "name",
        )
    date = options.get("compatibility_date")
    if date is not None and not DATE_RE.match(date):
        raise config.error(
            f"{date!r} is not a date like 2026-04-01", "cloudflare", "compatibility_date"
        )
    queue, dead_letters = options.get("queue"), options.get("dead_letter_queue")
    for key, value in (("queue", queue), ("dead_letter_queue", dead_letters)):
        if value is not None and not QUEUE_NAME_RE.match(value):
            raise config.error(
                f"{value!r} is not a queue name (lower-case letters, digits and dashes, "
                "at most 63)", "cloudflare", key)
    if dead_letters is not None and queue is None:
        raise config.error("needs [cloudflare] queue (the queue whose dead letters it takes)",
                           "cloudflare", "dead_letter_queue")
    if dead_letters is not None and dead_letters == queue:
        raise config.error("must differ from [cloudflare] queue", "cloudflare",
                           "dead_letter_queue")
    max_retries = options.get("max_retries", MAX_QUEUE_RETRIES)
    if max_retries > MAX_QUEUE_RETRIES:
        raise config.error(f"Cloudflare allows at most {MAX_QUEUE_RETRIES}, got {max_retries}",
                           "cloudflare", "max_retries")
    return WorkerSettings(
        main=ENTRY,
        crons=tuple(t.cron for t in triggers),
        default_name=_default_name(project.root),
        default_compatibility_date=DEFAULT_COMPATIBILITY_DATE,
        name=explicit_name,
        compatibility_date=date,
        queue=queue,
        dead_letter_queue=dead_letters,
        max_retries=max_retries,
    )


def _wrangler(
    project: Project, triggers: tuple[Trigger, ...], out: Path | None = None
) -> WranglerFile:
    """The merged wrangler config; relative paths in the user's config are
    rebased for ``out`` (the staging folder, a sibling of the final output, so
    the same relative path holds after the build's rename)."""
    from taskpack.builder.wrangler import find_user_config, render_wrangler

    settings = _settings(project, triggers)
    if out is not None:
        project_dir = Path(os.path.relpath(project.root.resolve(), out.resolve())).as_posix()
        settings = replace(settings, project_dir=project_dir)
    return render_wrangler(settings, find_user_config(project.root))


def _default_name(root: Path) -> str:
    """A valid Worker name from the project folder's name."""
    slug = re.sub(r"[^a-z0-9]+", "-", root.resolve().name.lower()).strip("-")[:63].strip("-")
    return slug or "taskpack-worker"


def _check_sources(project: Project) -> None:
    """``python_modules/`` inside ``src/`` breaks wrangler's Python bundling."""
    for rel in bundle.project_sources(project):
        if "python_modules" in rel.split("/")[:-1]:
            raise project.config.error(
                f"{rel} would be bundled into src/, where wrangler refuses python_modules/; "
                'add exclude = ["python_modules"] (pywrangler vendors dependencies itself)',
                "exclude",
            )
