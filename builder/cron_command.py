"""``taskpack cron EXPR``: what a cron expression means, when it fires next,
and what a preset would deploy for it.

The expression is evaluated in ``--tz`` (the project's ``timezone``; UTC by
default) and each fire time is printed in UTC and in that zone. With
``--preset``, the platform string is printed, or the platform's refusal
(exit 2). A bad expression exits 2 with the parser's message.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from typing import Any
from zoneinfo import ZoneInfoNotFoundError

import click

from taskpack.cron import CronError, CronExpr, zone

from .cron_describe import describe
from .dialects import (
    is_more_frequent_than_daily,
    to_cloudflare,
    to_vercel,
    utc_only_problem,
)
from .errors import UsageError


@dataclass(frozen=True)
class Platform:
    """How a preset's platform runs cron: ``translate`` gives its string
    (``None``: taskpack's own scheduler runs the expression as written)."""

    label: str
    vendor: str = "taskpack"
    translate: Callable[[CronExpr], str] | None = None
    utc_only: bool = False
    warn: Callable[[CronExpr], str | None] | None = None


def _vercel_hobby(expr: CronExpr) -> str | None:
    if is_more_frequent_than_daily(expr):
        return ("runs more than once a day: Vercel's Hobby plan allows one run a day "
                "(deploys fail); this needs a Pro plan")
    return None


def _no_cron_triggers(expr: CronExpr) -> str:
    raise CronError("Cloudflare Pages has no cron triggers; use the cloudflare_module preset "
                    "(a Python Worker with Cron Triggers)")


_SERVER = Platform("taskpack's scheduler")
PLATFORMS: dict[str, Platform] = {
    "server": _SERVER,
    "server_cluster": _SERVER,
    "asgi": _SERVER,
    "node_server": _SERVER,
    "node_cluster": _SERVER,
    "node_middleware": _SERVER,
    "cloudflare_module": Platform("Cloudflare Cron Triggers", "Cloudflare", to_cloudflare,
                                  utc_only=True),
    "cloudflare_pages": Platform("Cloudflare Pages", "Cloudflare Pages", _no_cron_triggers),
    "vercel": Platform("Vercel Cron Jobs", "Vercel", to_vercel, utc_only=True,
                       warn=_vercel_hobby),
}


@click.command("cron")
@click.argument("expression", metavar="EXPR")
@click.option("-n", "count", type=click.IntRange(1, 1000), default=5, show_default=True,
              help="How many fire times to show.")
@click.option("--preset", type=click.Choice(sorted(PLATFORMS)),
              help="Show what this preset would deploy, or why it refuses.")
@click.option("--tz", "timezone", default="UTC", show_default=True,
              help="IANA time zone the schedule runs in (the `timezone` setting).")
@click.option("--after", type=click.DateTime(["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S",
                                               "%Y-%m-%d"]),
              help="List fire times after this UTC time instead of now.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def cron(ctx: click.Context, expression: str, count: int, preset: str | None, timezone: str,
         after: datetime | None, as_json: bool) -> None:
    """Explain EXPR (croner's dialect): its meaning and next fire times."""
    try:
        expr = CronExpr.parse(expression)
    except CronError as exc:
        raise UsageError(f"EXPR {expression!r}", str(exc)) from None
    try:
        tz = zone(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError("--tz", f"unknown time zone {timezone!r} (use an IANA name such as "
                         "'UTC' or 'Europe/Berlin')") from None
    start = (after or datetime.now(UTC)).replace(tzinfo=UTC)
    fires = list(islice(expr.iter_after(start, tz), count))
    report: dict[str, Any] = {
        "expression": expression,
        "canonical": expr.canonical,
        "description": describe(expr),
        "timezone": timezone,
        "next": [{"utc": _iso(t.astimezone(UTC)), "local": _iso(t.astimezone(tz))}
                 for t in fires],
    }
    refusal = None
    if preset is not None:
        report["preset"], refusal = _preset_report(expr, preset, timezone)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        _echo_text(report, show_local=timezone != "UTC")
    if refusal is not None:
        raise UsageError(f"--preset {preset}", refusal)


def _preset_report(expr: CronExpr, preset: str,
                   timezone: str) -> tuple[dict[str, Any], str | None]:
    platform = PLATFORMS[preset]
    result: dict[str, Any] = {"name": preset, "platform": platform.label}
    problem = utc_only_problem(timezone, platform.vendor) if platform.utc_only else None
    if problem is None:
        try:
            result["cron"] = (platform.translate(expr) if platform.translate
                              else expr.source.strip())
        except CronError as exc:
            problem = str(exc)
    result["ok"] = problem is None
    if problem is not None:
        result["error"] = problem
    elif platform.warn is not None and (warning := platform.warn(expr)):
        result["warning"] = warning
    return result, problem


def _iso(t: datetime) -> str:
    return t.isoformat()


def _echo_text(report: dict[str, Any], *, show_local: bool) -> None:
    click.echo(f"{report['expression']}  ({report['canonical']})")
    click.echo(f"  {report['description']} ({report['timezone']})")
    click.echo(f"next {len(report['next'])} fire times:")
    for fire in report["next"]:
        utc = datetime.fromisoformat(fire["utc"]).strftime("%Y-%m-%d %H:%M:%S UTC")
        if show_local:
            local = datetime.fromisoformat(fire["local"])
            click.echo(f"  {utc}   {local.strftime('%Y-%m-%d %H:%M:%S %z')} "
                       f"{report['timezone']}")
        else:
            click.echo(f"  {utc}")
    preset = report.get("preset")
    if preset and preset["ok"]:
        click.echo(f"{preset['name']}: deploys {preset['cron']!r} ({preset['platform']})")
        if "warning" in preset:
            click.echo(f"warning: {preset['name']}: {preset['warning']}", err=True)
