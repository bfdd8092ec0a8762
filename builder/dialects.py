"""Platform cron dialects: what a preset deploys for a schedule, or why not.

Users write taskpack's dialect (:mod:`taskpack.cron`); a platform runs its
own. ``to_cloudflare`` and ``to_vercel`` return a string that means the same
on that platform, or raise :class:`~taskpack.cron.CronError` with the reason
and what to do instead. :func:`platform_triggers` applies one of them to all
of a project's schedules and merges schedules that mean the same into one
trigger (Cloudflare rejects duplicate triggers at deploy); :func:`as_written`
is the same shape for presets that run schedules unchanged.

Each preset names its :class:`CronPlatform` (``SCHEDULER``, ``CLOUDFLARE``,
``CLOUDFLARE_PAGES`` or ``VERCEL``); the build (``taskpack.json``, the
summary, the platform's config) and ``taskpack cron --preset`` both ask it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from taskpack.cron import CronError, CronExpr, is_utc

from .config import Config
from .project import Schedule

Translate = Callable[[CronExpr], str]


def to_cloudflare(expr: CronExpr) -> str:
    """The Cloudflare Cron Trigger for ``expr``: 5 fields, UTC, weekdays as
    names (Cloudflare numbers weekdays 1-7 from Sunday, so digits written for
    croner would shift by a day), ``L``/``W``/``#`` as is."""
    _refuse_seconds(expr, "Cloudflare Cron Triggers")
    _refuse_extension_lists(expr, "Cloudflare's cron parser", weekday_names=True)
    return expr.render(weekday_names=True)


def to_vercel(expr: CronExpr) -> str:
    """The Vercel Cron Job schedule for ``expr``: 5 fields, UTC, digits only,
    weekdays 0-6; no ``L``/``W``/``#``, and not both day fields."""
    _refuse_seconds(expr, "Vercel Cron Jobs")
    if expr.uses_extensions:
        raise CronError("Vercel Cron Jobs do not support L, W or #. Schedule a daily job and "
                        "check the date in the task, or deploy to a server or Cloudflare "
                        "preset.")
    if expr.both_days_restricted:
        raise CronError("Vercel does not allow both day-of-month and day-of-week to be set "
                        "(here croner would run when EITHER matches). Split it into two "
                        "schedules.")
    return expr.render(weekday_names=False)


def is_more_frequent_than_daily(expr: CronExpr) -> bool:
    """Whether ``expr`` can fire more than once on some day (Vercel's Hobby
    plan allows at most one run a day)."""
    return len(expr.seconds) * len(expr.minutes) * len(expr.hours) > 1


def _refuse_extension_lists(expr: CronExpr, parser: str, *, weekday_names: bool) -> None:
    """Lists and ranges of ``L``/``W``/``#`` (croner 11's ``15,L``,
    ``MON-FRIL``) are refused on a platform whose parser is not known to
    read them as croner 11 does, naming the single-item schedules to write."""
    if not expr.uses_extension_lists:
        return
    items = ", ".join(f"'{part.render(weekday_names=weekday_names)}'"
                      for part in expr.split_lists())
    raise CronError(f"{parser} is not known to read lists or ranges of L, W or # as croner 11 "
                    f"does; write one schedule per item instead: {items} (a day matching two "
                    "items then runs twice)")


def _refuse_seconds(expr: CronExpr, platform: str) -> None:
    if expr.has_seconds:
        raise CronError(f"{platform} run at minute resolution; a seconds field other than 0 "
                        "cannot be deployed. Use a 5-field expression.")


@dataclass(frozen=True)
class Trigger:
    """One platform trigger: the deployed ``cron`` string, the tasks it runs
    (union, in config order) and the config keys it came from."""

    cron: str
    tasks: tuple[str, ...]
    keys: tuple[str, ...]


def platform_triggers(schedules: Iterable[Schedule], translate: Translate, *,
                      config: Config) -> tuple[Trigger, ...]:
    """Translate every schedule and merge those equal in meaning, in order
    of first appearance. A refusal is a ``ConfigError`` naming
    ``scheduled_tasks."<key>"``."""
    groups: dict[CronExpr, tuple[str, list[str], list[str]]] = {}
    for schedule in schedules:
        try:
            expr = CronExpr.parse(schedule.cron)
            cron = translate(expr)
        except CronError as exc:
            raise config.error(str(exc), "scheduled_tasks", schedule.cron) from None
        _, tasks, keys = groups.setdefault(expr, (cron, [], []))
        tasks.extend(name for name in schedule.tasks if name not in tasks)
        keys.append(schedule.cron)
    return tuple(Trigger(cron, tuple(tasks), tuple(keys)) for cron, tasks, keys in groups.values())


def as_written(schedules: Iterable[Schedule]) -> tuple[Trigger, ...]:
    """Each schedule deployed exactly as written (taskpack's own scheduler
    runs the project's dialect, so nothing is translated or merged)."""
    return tuple(Trigger(s.cron, s.tasks, (s.cron,)) for s in schedules)


def utc_only_problem(timezone: str, platform: str) -> str | None:
    """What is wrong with ``timezone`` on a platform that runs UTC only, or None."""
    if is_utc(timezone):
        return None
    return (f"{platform} runs schedules in UTC only, so timezone {timezone!r} cannot be "
            "honoured; remove `timezone` (or set it to \"UTC\") and write the cron in UTC")


def require_utc(config: Config, platform: str) -> None:
    """``ConfigError`` naming ``timezone`` unless the project's time zone is UTC."""
    problem = utc_only_problem(config.timezone, platform)
    if problem is not None:
        raise config.error(problem, "timezone")


def vercel_hobby_warning(expr: CronExpr) -> str | None:
    """The Hobby-plan catch of a Vercel schedule, or None."""
    if is_more_frequent_than_daily(expr):
        return ("runs more than once a day: Vercel's Hobby plan allows one run a day "
                "(deploys fail); this needs a Pro plan")
    return None


def _no_cron_triggers(expr: CronExpr) -> str:
    raise CronError("Cloudflare Pages has no cron triggers; use the cloudflare_module preset "
                    "(a Python Worker with Cron Triggers)")


@dataclass(frozen=True)
class CronPlatform:
    """How a preset's platform runs cron.

    ``translate`` gives the platform's string for an expression (``None``:
    taskpack's own scheduler runs it as written, in the project's time
    zone); ``utc_only``: the platform runs UTC only, so another
    ``timezone`` is refused; ``warn`` returns the catch of an expression
    that deploys but may not run as hoped (``None`` when there is none).
    """

    label: str
    vendor: str = "taskpack"
    translate: Translate | None = None
    utc_only: bool = False
    warn: Callable[[CronExpr], str | None] | None = None

    def triggers(self, schedules: Iterable[Schedule], config: Config) -> tuple[Trigger, ...]:
        """The schedules as this platform runs them; ``ConfigError`` naming
        the key for what it cannot run (a non-UTC ``timezone`` included)."""
        if self.translate is None:
            return as_written(schedules)
        if self.utc_only:
            require_utc(config, self.vendor)
        return platform_triggers(schedules, self.translate, config=config)


SCHEDULER = CronPlatform("taskpack's scheduler")
CLOUDFLARE = CronPlatform("Cloudflare Cron Triggers", "Cloudflare", to_cloudflare, utc_only=True)
CLOUDFLARE_PAGES = CronPlatform("Cloudflare Pages", "Cloudflare Pages", _no_cron_triggers)
VERCEL = CronPlatform("Vercel Cron Jobs", "Vercel", to_vercel, utc_only=True,
                      warn=vercel_hobby_warning)
