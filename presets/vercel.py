"""``vercel``: a Vercel project that Vercel's own Python builder builds.

Output (``.output/`` by default)::

    vercel.json              crons (one path per schedule), rewrites, functions,
                             merged into the project's own vercel.json
    api/index.py             the function: the runtime's ASGI ``app``
                             (:func:`taskpack.vercel.vercel_app`)
    taskpack/ project/ taskpack_manifest.py   the bundle (:mod:`taskpack.layout`)
    requirements.txt         the project's requirements (the runtime needs none)
    .python-version          ``[vercel] python`` (default 3.12)
    public/.gitkeep          see below
    .vercel/project.json     copied from the project when it has been linked
    README.md                how to deploy and test it, the cron jobs

Cron jobs: each distinct schedule (schedules equal in meaning are merged by
the cron dialect mechanism) gets the path ``/_taskpack/cron/<id>``
(:func:`taskpack.vercel.cron_path`) and its Vercel string (digits only,
day-of-week 0-6); what Vercel cannot run the same way fails the build
naming the ``scheduled_tasks`` key. More than 100 cron jobs is an error;
a schedule more frequent than daily is a warning (Hobby plans refuse it at
deploy).

Static files: without a ``public/`` folder holding a file, Vercel serves
every file outside ``api/`` as a static asset — the bundled task sources
and the manifest included. ``public/.gitkeep`` makes ``public/`` the static
folder, and Vercel's Python builder leaves ``public/`` out of the function.

The user's ``vercel.json`` (in the project root) is merged: every key of
theirs is kept; their ``crons`` come first and ours are appended; their
``rewrites`` follow ours (ours are specific paths, theirs may be
catch-alls); ``functions."api/index.py"`` keeps their settings with our
``maxDuration``. Entries an earlier build generated (paths under
``/_taskpack/`` or ``/_nitro/tasks``) are replaced, never duplicated.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskpack import __version__
from taskpack.builder.bundle import render, write_bundle, write_bytes, write_text
from taskpack.builder.dialects import VERCEL, is_more_frequent_than_daily
from taskpack.builder.errors import ConfigError
from taskpack.builder.project import Project
from taskpack.cron import CronExpr
from taskpack.vercel import CRON_PREFIX, CronRoute, cron_path

name = "vercel"
aliases: tuple[str, ...] = ()
summary = "a Vercel project with Cron Jobs guarded by CRON_SECRET"
cron_platform = VERCEL

FUNCTION = "api/index.py"
FUNCTION_ROUTE = "/api/index"
TASKS_API_PREFIX = "/_nitro/tasks"
OWN_PREFIX = "/_taskpack/"
# What an earlier build generated, recognised by path: crons by ``path``,
# rewrites by ``source``.
GENERATED_CRONS = (OWN_PREFIX,)
GENERATED_REWRITES = (OWN_PREFIX, TASKS_API_PREFIX)
JSON_KINDS = {list: "array", dict: "object"}
MAX_CRON_JOBS = 100
DEFAULT_MAX_DURATION = 300
HOBBY_MAX_DURATION = 300
PRO_MAX_DURATION = 800
DEFAULT_PYTHON = "3.12"
USER_CONFIG = "vercel.json"
PROJECT_LINK = ".vercel/project.json"
STATIC_GUARD = "public/.gitkeep"


@dataclass(frozen=True)
class Options:
    """The ``[vercel]`` table with defaults applied."""

    tasks_api: bool
    max_duration: int
    python: str
    allow_unauthenticated_cron: bool

    @classmethod
    def of(cls, project: Project) -> Options:
        table = project.preset_options("vercel")
        return cls(
            tasks_api=bool(table.get("tasks_api", False)),
            max_duration=int(table.get("max_duration", DEFAULT_MAX_DURATION)),
            python=str(table.get("python", DEFAULT_PYTHON)),
            allow_unauthenticated_cron=bool(table.get("allow_unauthenticated_cron", False)),
        )


def cron_routes(project: Project) -> list[CronRoute]:
    """One route per distinct Vercel schedule, in the order of the project's
    schedules; :class:`ConfigError` naming the key for what Vercel cannot
    run (a time zone other than UTC included)."""
    return [
        CronRoute(cron_path(trigger.cron), trigger.cron, trigger.tasks)
        for trigger in VERCEL.triggers(project.schedules, project.config)
    ]


def validate(project: Project) -> list[str]:
    """Plan and platform checks; the warnings to print."""
    options = Options.of(project)
    routes = cron_routes(project)
    theirs = user_crons(user_config(project))  # a broken vercel.json fails here
    warnings: list[str] = []
    if len(routes) + len(theirs) > MAX_CRON_JOBS:
        mine = f" plus {len(theirs)} in vercel.json" if theirs else ""
        raise project.config.error(
            f"{len(routes)} distinct schedules{mine}, but Vercel allows at most "
            f"{MAX_CRON_JOBS} cron jobs per project; merge some schedules",
            "scheduled_tasks",
        )
    frequent = [route.schedule for route in routes
                if is_more_frequent_than_daily(CronExpr.parse(route.schedule))]
    if frequent:
        warnings.append(
            f"vercel: {', '.join(repr(s) for s in frequent)} run(s) more often than once a day: "
            "Vercel's Hobby plan refuses such cron jobs at deploy (Pro runs them)"
        )
    if options.max_duration > PRO_MAX_DURATION:
        raise project.config.error(
            f"{options.max_duration} is over Vercel's limit of {PRO_MAX_DURATION} seconds",
            "vercel", "max_duration",
        )
    if options.max_duration > HOBBY_MAX_DURATION:
        warnings.append(
            f"vercel: max_duration = {options.max_duration}: Hobby plans allow at most "
            f"{HOBBY_MAX_DURATION} seconds"
        )
    if options.allow_unauthenticated_cron:
        warnings.append(
            "vercel: allow_unauthenticated_cron = true: without CRON_SECRET anyone who "
            "knows a cron path can run its tasks"
        )
    return warnings


def emit(project: Project, out: Path) -> None:
    options = Options.of(project)
    routes = cron_routes(project)
    write_bundle(project, out, requirements=())
    render(
        "vercel/index.py.j2",
        out / FUNCTION,
        routes=[
            {"path": repr(r.path), "schedule": repr(r.schedule), "tasks": repr(r.tasks)}
            for r in routes
        ],
        tasks_api=options.tasks_api,
        allow_unauthenticated_cron=options.allow_unauthenticated_cron,
    )
    config = merge_config(user_config(project), routes, options)
    write_text(out / USER_CONFIG, json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    write_text(out / ".python-version", options.python + "\n")
    write_bytes(out / STATIC_GUARD, b"")
    link = project.root / PROJECT_LINK
    if link.is_file():
        write_bytes(out / PROJECT_LINK, link.read_bytes())
    render(
        "vercel/README.md.j2",
        out / "README.md",
        version=__version__,
        steps=[step for step in next_steps(project, out) if not step.startswith("cd ")],
        routes=routes,
        tasks_api=options.tasks_api,
    )


def next_steps(project: Project, out: Path) -> list[str]:
    """How to deploy the output at ``out``."""
    steps = []
    if not (project.root / PROJECT_LINK).is_file():
        # Linked inside the output, the link would be lost at the next build.
        steps.append("vercel link   # once, in the project root, then build again "
                     "(the build copies the link into the output)")
    steps += [
        f"cd {out}",
        "vercel env add CRON_SECRET production   # once: a random string of 16+ characters",
    ]
    if project.preset_options("vercel").get("tasks_api", False):
        steps.append("vercel env add TASKPACK_TASKS_TOKEN production  # once: the API token")
    return [*steps, "vercel deploy --prod"]


# -- vercel.json --------------------------------------------------------------


def user_config(project: Project) -> dict[str, Any]:
    """The project's own ``vercel.json`` (``{}`` when there is none);
    :class:`ConfigError` when it is not a JSON object or its ``crons``,
    ``rewrites`` or ``functions`` have the wrong shape."""
    path = project.root / USER_CONFIG
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(USER_CONFIG, None, f"invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(USER_CONFIG, None, "must be a JSON object")
    for key, kind in (("crons", list), ("rewrites", list), ("functions", dict)):
        if key in data and not isinstance(data[key], kind):
            raise ConfigError(USER_CONFIG, key, f"must be a JSON {JSON_KINDS[kind]}")
    if "builds" in data:
        raise ConfigError(USER_CONFIG, "builds", "cannot be combined with taskpack's "
                          "`functions` settings; remove it (Vercel detects api/index.py)")
    if "routes" in data:
        raise ConfigError(USER_CONFIG, "routes", "cannot be combined with the `rewrites` "
                          "taskpack adds; express them as rewrites, redirects or headers")
    return data


def user_crons(user: Mapping[str, Any]) -> list[Any]:
    """The user's own cron jobs: theirs minus those an earlier build generated."""
    return [c for c in user.get("crons", []) if not _generated(c, "path", GENERATED_CRONS)]


def merge_config(user: Mapping[str, Any], routes: Sequence[CronRoute],
                 options: Options) -> dict[str, Any]:
    """``user``'s vercel.json with taskpack's entries merged in (see the
    module docstring). Pure: the same inputs give the same output."""
    config = dict(user)
    config["crons"] = user_crons(user) + [{"path": r.path, "schedule": r.schedule} for r in routes]
    # Unnamed groups only: Vercel appends named parameters (``:id``) to the
    # query string, which the task API would read as payload.
    ours = [{"source": CRON_PREFIX + "(.*)", "destination": FUNCTION_ROUTE}]
    if options.tasks_api:
        ours.append({"source": TASKS_API_PREFIX + "(/.*)?", "destination": FUNCTION_ROUTE})
    config["rewrites"] = ours + [r for r in user.get("rewrites", [])
                                 if not _generated(r, "source", GENERATED_REWRITES)]
    functions = dict(user.get("functions", {}))
    function = dict(functions.get(FUNCTION, {}))
    function["maxDuration"] = options.max_duration
    functions[FUNCTION] = function
    config["functions"] = functions
    return config


def _generated(entry: Any, key: str, prefixes: tuple[str, ...]) -> bool:
    """Whether ``entry`` (a cron or rewrite) is one taskpack generated."""
    if not isinstance(entry, dict):
        return False
    value = entry.get(key)
    return isinstance(value, str) and value.startswith(prefixes)
