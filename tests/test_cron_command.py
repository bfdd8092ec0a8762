"""``taskpack cron`` through click's CliRunner."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from itertools import islice

import pytest
from click.testing import CliRunner, Result

from taskpack.builder.cli import main
from taskpack.builder.cron_describe import describe
from taskpack.cron import CronExpr


def run(*args: str) -> Result:
    return CliRunner().invoke(main, ["cron", *args])


def test_text_output_with_a_preset() -> None:
    result = run("0 12 * * 1-5", "--after", "2026-01-01", "-n", "3",
                 "--preset", "cloudflare_module")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "0 12 * * 1-5  (0 12 * * 1-5)",
        "  At 12:00 on Monday through Friday (UTC)",
        "next 3 fire times:",
        "  2026-01-01 12:00:00 UTC",
        "  2026-01-02 12:00:00 UTC",
        "  2026-01-05 12:00:00 UTC",
        "cloudflare_module: deploys '0 12 * * MON-FRI' (Cloudflare Cron Triggers)",
    ]


def test_json_output_in_a_time_zone_across_spring_forward() -> None:
    result = run("30 2 * * *", "--tz", "America/New_York", "--after", "2026-03-07T12:00:00",
                 "-n", "2", "--preset", "server", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "expression": "30 2 * * *",
        "canonical": "30 2 * * *",
        "description": "At 02:30",
        "timezone": "America/New_York",
        "next": [
            {"utc": "2026-03-08T07:00:00+00:00", "local": "2026-03-08T03:00:00-04:00"},
            {"utc": "2026-03-09T06:30:00+00:00", "local": "2026-03-09T02:30:00-04:00"},
        ],
        "preset": {"name": "server", "platform": "taskpack's scheduler", "cron": "30 2 * * *",
                   "ok": True},
    }


def test_default_is_five_fire_times_from_now() -> None:
    before = datetime.now(UTC)
    result = run("*/7 * * * *", "--json")
    after = datetime.now(UTC)
    times = [datetime.fromisoformat(f["utc"]) for f in json.loads(result.stdout)["next"]]
    expr = CronExpr.parse("*/7 * * * *")
    assert times in (list(islice(expr.iter_after(before), 5)),
                     list(islice(expr.iter_after(after), 5)))


@pytest.mark.parametrize(("args", "line"), [
    (("0 0 30 2 *",), "error: EXPR '0 0 30 2 *': this schedule never fires (e.g. a day that "
                      "does not exist in the given month)"),
    (("0 0 ? * MON",), "error: EXPR '0 0 ? * MON': '?' is not supported: croner 10 treats "
                       "'?' in a day field as 'every day' (so '0 0 ? * MON' runs daily), "
                       "croner 11 as '*'. Write '*' instead."),
    (("* * * * *", "--tz", "Mars/Olympus"),
     "error: --tz: unknown time zone 'Mars/Olympus' (use an IANA name such as 'UTC' or "
     "'Europe/Berlin')"),
])
def test_bad_input_exits_2_with_one_line(args: tuple[str, ...], line: str) -> None:
    result = run(*args)
    assert result.exit_code == 2
    assert result.stderr == line + "\n"
    assert result.stdout == ""


@pytest.mark.parametrize(("args", "message"), [
    (("0 0 1 * 1", "--preset", "vercel"),
     "error: --preset vercel: Vercel does not allow both day-of-month and day-of-week"),
    (("*/2 * * * * *", "--preset", "cloudflare_module"),
     "error: --preset cloudflare_module: Cloudflare Cron Triggers run at minute resolution"),
    (("0 9 * * *", "--preset", "cloudflare_pages"),
     "error: --preset cloudflare_pages: Cloudflare Pages has no cron triggers; use the "
     "cloudflare_module preset"),
    (("0 9 * * *", "--preset", "vercel", "--tz", "Europe/Berlin"),
     "error: --preset vercel: Vercel runs schedules in UTC only, so timezone 'Europe/Berlin'"),
])
def test_preset_refusal_exits_2_after_the_explanation(args: tuple[str, ...],
                                                      message: str) -> None:
    result = run(*args)
    assert result.exit_code == 2
    assert result.stderr.startswith(message)
    assert "next 5 fire times:" in result.stdout


def test_preset_refusal_in_json() -> None:
    result = run("0 0 L * *", "--preset", "vercel", "--json")
    assert result.exit_code == 2
    preset = json.loads(result.stdout)["preset"]
    assert preset["ok"] is False
    assert preset["error"].startswith("Vercel Cron Jobs do not support L, W or #")


def test_vercel_hobby_warning() -> None:
    result = run("*/15 * * * *", "--preset", "vercel")
    assert result.exit_code == 0
    assert "vercel: deploys '*/15 * * * *'" in result.stdout
    assert "Hobby plan allows one run a day" in result.stderr
    assert "Hobby" not in run("@daily", "--preset", "vercel").stderr


def test_unknown_preset_is_a_usage_error() -> None:
    result = run("* * * * *", "--preset", "heroku")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --preset: unknown preset 'heroku' (known: asgi ")


@pytest.mark.parametrize(("alias", "deployed"), [
    ("node-server", "node-server: deploys '0 12 * * 1-5' (taskpack's scheduler)"),
    ("cloudflare-module", "cloudflare-module: deploys '0 12 * * MON-FRI' (Cloudflare Cron"),
])
def test_preset_aliases_are_the_builds(alias: str, deployed: str) -> None:
    result = run("0 12 * * 1-5", "--preset", alias)
    assert result.exit_code == 0, result.stderr
    assert deployed in result.stdout


@pytest.mark.parametrize(("text", "sentence"), [
    ("0 12 * * 1-5", "At 12:00 on Monday through Friday"),
    ("* * * * *", "Every minute"),
    ("*/15 * * * *", "Every 15th minute"),
    ("1-59/15 * * * *", "Every 15th minute from 1 through 46"),
    ("0 9-17/2 * * *", "At minute 0 past every 2nd hour from 9 through 17"),
    ("0 * * * *", "At minute 0"),
    ("*/2 * * * * *", "Every 2nd second"),
    ("30 0 0 * * *", "At 00:00:30"),
    ("0 0 1 jan,jul *", "At 00:00 on day-of-month 1 in January and July"),
    ("0 0 1 * 1", "At 00:00 on day-of-month 1 or on Monday"),
    ("0 0 L * *", "At 00:00 on the last day of the month"),
    ("0 0 15W * *", "At 00:00 on the weekday nearest day-of-month 15"),
    ("0 0 * * MON#2", "At 00:00 on the second Monday of the month"),
    ("0 0 * * 5L", "At 00:00 on the last Friday of the month"),
    ("0 0 * * 6,0", "At 00:00 on Sunday and Saturday"),
    ("0 0,12 * * *", "At minute 0 past hour 0 and 12"),
])
def test_descriptions(text: str, sentence: str) -> None:
    assert describe(CronExpr.parse(text)) == sentence
