"""Platform cron dialects: what a preset deploys for a schedule, or why not.

Users write taskpack's dialect (:mod:`taskpack.cron`); a platform runs its
own. ``to_cloudflare`` and ``to_vercel`` return a string that means the same
on that platform, or raise :class:`~taskpack.cron.CronError` with the reason
and what to do instead. :func:`platform_triggers` applies one of them to all
of a project's schedules and merges schedules that mean the same into one
trigger (Cloudflare rejects duplicate triggers at deploy).
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
