"""Platform cron dialects: what a preset deploys for a schedule, or why not.

Users write taskpack's dialect (:mod:`taskpack.cron`); a platform runs its
own. ``to_cloudflare``, ``to_vercel``, ``to_aws_scheduler`` and
``to_kubernetes`` return a string that means the same on that platform, or
raise :class:`~taskpack.cron.CronError` with the reason and what to do
instead. :func:`platform_triggers` applies one of them to all
of a project's schedules and merges schedules that mean the same into one
trigger (Cloudflare rejects duplicate triggers at deploy); :func:`as_written`
is the same shape for presets that run schedules unchanged.

Each preset names its :class:`CronPlatform` (``SCHEDULER``, ``CLOUDFLARE``,
``CLOUDFLARE_PAGES``, ``VERCEL``, ``AWS_SCHEDULER`` or ``KUBERNETES``); the
build (``taskpack.json``, the summary, the platform's config) and
``taskpack cron --preset`` both ask it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from taskpack.cron import (
    CronError,
    CronExpr,
    LastDay,
    NearestWeekday,
    NthWeekday,
    Values,
    is_utc,
    zone,
)

from .aws_cron import check_aws_cron
from .config import Config
from .kube_cron import check_kubernetes_schedule
from .project import Schedule

Translate = Callable[[CronExpr], str]


def to_cloudflare(expr: CronExpr) -> str:
    """The Cloudflare Cron Trigger for ``expr``: 5 fields, UTC, weekdays as
    names (Cloudflare numbers weekdays 1-7 from Sunday, so digits written for
    croner would shift by a day), ``L``/``W``/``#`` as is."""
    _refuse_seconds(expr, "Cloudflare Cron Triggers")
    _refuse_extension_lists(expr, "Cloudflare's cron parser")
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


def to_aws_scheduler(expr: CronExpr) -> str:
    """The EventBridge Scheduler expression for ``expr``:
    ``cron(min hour dom month dow year)``, evaluated by the Scheduler in the
    schedule's ``ScheduleExpressionTimezone``. ``?`` in the day field that is
    not set; weekdays as names (AWS numbers them 1-7 from Sunday), ``D#n``
    and ``DL`` with AWS's weekday numbers; steps as ``start/step`` (the form
    AWS documents) when they run to the field's end, else listed. Refused:
    a seconds field, and both day fields set (AWS allows only one)."""
    _refuse_seconds(expr, "EventBridge Scheduler cron expressions")
    _refuse_extension_lists(expr, "EventBridge Scheduler")
    if expr.both_days_restricted:
        raise CronError("EventBridge Scheduler cannot set both day-of-month and day-of-week "
                        "(one must be '?'; here croner would run when EITHER matches). Split it "
                        "into two schedules.")
    dom, dow = expr.days_of_month, expr.days_of_week
    if isinstance(dom, LastDay):
        dom_text = "L"
    elif isinstance(dom, NearestWeekday):
        dom_text = f"{dom.day}W"
    elif dom is None:
        dom_text = "?" if dow is not None else "*"
    else:
        assert isinstance(dom, frozenset)  # lists were refused above
        dom_text = _aws_values(dom, 1, 31)
    if isinstance(dow, NthWeekday):
        number = dow.weekday + 1  # AWS: 1 = Sunday
        dow_text = f"{number}L" if dow.nth is None else f"{number}#{dow.nth}"
    elif dow is None:
        dow_text = "?"
    else:
        assert isinstance(dow, frozenset)  # lists were refused above
        dow_text = _runs_text(dow, _AWS_WEEKDAYS.__getitem__)
    fields = (_aws_values(expr.minutes, 0, 59), _aws_values(expr.hours, 0, 23), dom_text,
              _aws_values(expr.months, 1, 12), dow_text, "*")
    return f"cron({' '.join(fields)})"


def to_kubernetes(expr: CronExpr) -> str:
    """The CronJob ``schedule`` for ``expr`` (the controller parses it with
    robfig/cron's standard parser): 5 fields, digits, weekdays 0-6 (7 is
    rejected there); no ``L``/``W``/``#``. When both day fields are set
    either matches, as in croner; the time zone goes in ``spec.timeZone``,
    never as a ``TZ=`` prefix."""
    _refuse_seconds(expr, "Kubernetes CronJobs")
    if expr.uses_extensions:
        raise CronError("Kubernetes CronJobs do not support L, W or #. Schedule a daily job and "
                        "check the date in the task, or use [kubernetes] scheduler = "
                        "\"in-process\".")
    return expr.render(weekday_names=False)


_AWS_WEEKDAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")


def _aws_values(values: Values, low: int, high: int) -> str:
    """A plain AWS field: ``*``; ``start/step`` for 3+ evenly spaced values
    running to the field's end; else values and ranges."""
    if values == frozenset(range(low, high + 1)):
        return "*"
    ordered = sorted(values)
    if len(ordered) > 2:
        step = ordered[1] - ordered[0]
        if step > 1 and ordered == list(range(ordered[0], high + 1, step)):
            return f"{ordered[0]}/{step}"
    return _runs_text(values, str)


def _runs_text(values: Values, show: Callable[[int], str]) -> str:
    """``values`` as a list of single values and ``a-b`` ranges."""
    runs: list[list[int]] = []
    for value in sorted(values):
        if runs and runs[-1][1] == value - 1:
            runs[-1][1] = value
        else:
            runs.append([value, value])
    return ",".join(show(a) if a == b else f"{show(a)}-{show(b)}" for a, b in runs)


def skipped_in_gap(expr: CronExpr, timezone: str, start: datetime,
                   days: int = 366) -> datetime | None:
    """The first wall time (naive) within ``days`` after ``start`` at which
    ``expr`` is due but which does not exist in ``timezone`` (the
    spring-forward gap), or None. taskpack runs such a fire at the end of
    the gap (fixed-time schedules, :mod:`taskpack.cron`); EventBridge
    Scheduler skips it. Interval schedules (every hour) have no such
    fire anywhere."""
    if expr.is_interval or is_utc(timezone):
        return None
    tz = zone(timezone)
    day = start.astimezone(tz).replace(hour=0, minute=0, second=0, microsecond=0,
                                       tzinfo=None)
    for _ in range(days):
        following = day + timedelta(days=1)
        before = day.replace(tzinfo=tz).utcoffset()
        after = (following - timedelta(seconds=1)).replace(tzinfo=tz).utcoffset()
        if before is not None and after is not None and after > before:
            for wall in expr.iter_after((day - timedelta(seconds=1)).replace(tzinfo=UTC)):
                naive = wall.replace(tzinfo=None)
                if naive >= following:
                    break
                local = naive.replace(tzinfo=tz)
                if local.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != naive:
                    return naive
        day = following
    return None


def is_more_frequent_than_daily(expr: CronExpr) -> bool:
    """Whether ``expr`` can fire more than once on some day (Vercel's Hobby
    plan allows at most one run a day)."""
    return len(expr.seconds) * len(expr.minutes) * len(expr.hours) > 1


def _refuse_extension_lists(expr: CronExpr, parser: str) -> None:
    """Lists and ranges of ``L``/``W``/``#`` (croner 11's ``15,L``,
    ``MON-FRIL``) are refused on a platform whose parser is not known to
    read them as croner 11 does, naming the single-item schedules to write
    in the config instead."""
    if not expr.uses_extension_lists:
        return
    items = ", ".join(f"'{part.render(weekday_names=True)}'" for part in expr.split_lists())
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
    check: Callable[[str], None] | None = None

    def deployed(self, expr: CronExpr) -> str:
        """The platform's string for ``expr`` (``CronError``: refused). With
        ``check`` (the platform's own syntax, :mod:`~taskpack.builder.aws_cron`,
        :mod:`~taskpack.builder.kube_cron`), every string is checked before
        it is deployed: one it rejects is a translation bug, never the
        user's (``RuntimeError``)."""
        if self.translate is None:
            return expr.source.strip()
        text = self.translate(expr)
        if self.check is not None:
            try:
                self.check(text)
            except CronError as exc:
                raise RuntimeError(f"{self.label}: {expr.source!r} was translated to {text!r}, "
                                   f"which the platform refuses: {exc}") from None
        return text

    def explain(self, expr: CronExpr, timezone: str) -> dict[str, Any]:
        """What this platform deploys for ``expr`` in ``timezone``, as JSON:
        ``{"platform", "ok", "cron"}`` (plus ``"warning"`` when
        :attr:`warn` has one), or ``{"platform", "ok": false, "error"}``
        with the refusal's reason (``taskpack cron --preset``, the
        dashboard)."""
        result: dict[str, Any] = {"platform": self.label}
        problem = utc_only_problem(timezone, self.vendor) if self.utc_only else None
        if problem is None:
            try:
                result["cron"] = self.deployed(expr)
            except CronError as exc:
                problem = str(exc)
        result["ok"] = problem is None
        if problem is not None:
            result["error"] = problem
        elif self.warn is not None and (warning := self.warn(expr)):
            result["warning"] = warning
        return result

    def triggers(self, schedules: Iterable[Schedule], config: Config) -> tuple[Trigger, ...]:
        """The schedules as this platform runs them; ``ConfigError`` naming
        the key for what it cannot run (a non-UTC ``timezone`` included)."""
        if self.translate is None:
            return as_written(schedules)
        if self.utc_only:
            require_utc(config, self.vendor)
        return platform_triggers(schedules, self.deployed, config=config)


SCHEDULER = CronPlatform("taskpack's scheduler")
CLOUDFLARE = CronPlatform("Cloudflare Cron Triggers", "Cloudflare", to_cloudflare, utc_only=True)
CLOUDFLARE_PAGES = CronPlatform("Cloudflare Pages", "Cloudflare Pages", _no_cron_triggers)
VERCEL = CronPlatform("Vercel Cron Jobs", "Vercel", to_vercel, utc_only=True,
                      warn=vercel_hobby_warning)
AWS_SCHEDULER = CronPlatform("EventBridge Scheduler", "AWS", to_aws_scheduler,
                             check=check_aws_cron)
KUBERNETES = CronPlatform("Kubernetes CronJobs", "Kubernetes", to_kubernetes,
                          check=check_kubernetes_schedule)
