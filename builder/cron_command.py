"""``taskpack cron EXPR``: what a cron expression means, when it fires next,
and what a preset would deploy for it.

The expression is evaluated in ``--tz``, else the ``timezone`` of the
project at ``--root`` (the current folder), else UTC, and each fire time is
printed in UTC and in that zone. With
``--preset``, the platform string is printed, or the platform's refusal
(exit 2). A bad expression exits 2 with the parser's message.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfoNotFoundError

import click

from taskpack.cron import CronError, CronExpr, zone

from .cli_options import root_option
from .config import find_config, load_config
from .cron_describe import describe
from .errors import UsageError


@click.command("cron")
@click.argument("expression", metavar="EXPR")
@click.option("-n", "count", type=click.IntRange(1, 1000), default=5, show_default=True,
              help="How many fire times to show.")
@click.option("--preset", help="Show what this preset (or alias) would deploy, or why it "
                               "refuses.")
@click.option("--tz", "timezone",
              help="IANA time zone the schedule runs in [default: the project's `timezone` "
                   "when run in a project, else UTC].")
@root_option("The project whose `timezone` is the default of --tz.")
@click.option("--after", type=click.DateTime(["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S",
                                               "%Y-%m-%d"]),
              help="List fire times after this UTC time instead of now.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def cron(ctx: click.Context, expression: str, count: int, preset: str | None,
         timezone: str | None, root: Path, after: datetime | None, as_json: bool) -> None:
    """Explain EXPR (croner's dialect): its meaning and next fire times."""
    if timezone is None:
        timezone = project_timezone(root)
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


def project_timezone(root: Path) -> str:
    """The ``timezone`` of the project at ``root`` (UTC when there is no
    config there); a broken config is its one-line error."""
    if not root.is_dir() or find_config(root) is None:
        return "UTC"
    return load_config(root).timezone


def _preset_report(expr: CronExpr, preset: str,
                   timezone: str) -> tuple[dict[str, Any], str | None]:
    from taskpack.presets import get_preset  # only with --preset: it loads every preset

    platform = get_preset(preset, source="--preset").cron_platform
    result = {"name": preset, **platform.explain(expr, timezone)}
    return result, result.get("error")


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
