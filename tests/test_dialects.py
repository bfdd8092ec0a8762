"""builder.dialects: platform strings agree with translations.md and with
Cloudflare's own parser (saffron) fire times; triggers merge by meaning.

Cloudflare and Vercel cannot run here: their dialects are tested against
their documented contract (PLATFORMS.md), the verified table and saffron's
fire times (tests/data/README.md says where those come from).
"""

from __future__ import annotations

import json
import re

import pytest

from taskpack.builder.config import Config
from taskpack.builder.dialects import (
    Trigger,
    is_more_frequent_than_daily,
    platform_triggers,
    require_utc,
    to_cloudflare,
    to_vercel,
    utc_only_problem,
)
from taskpack.builder.errors import ConfigError
from taskpack.builder.project import Schedule
from taskpack.cron import CronError, CronExpr
from tests.test_cron import CRONER, DATA, assert_message, table_rows

SAFFRON = json.loads((DATA / "cloudflare_saffron.json").read_text())["results"]
ROWS = table_rows()
PLATFORMS = {"cloudflare": (2, to_cloudflare), "vercel": (3, to_vercel)}


def translate(text: str, platform: str) -> str:
    return PLATFORMS[platform][1](CronExpr.parse(text))


@pytest.mark.parametrize("platform", sorted(PLATFORMS))
@pytest.mark.parametrize("row", ROWS, ids=lambda row: row[0])
def test_translation_agrees_with_table(row: list[str], platform: str) -> None:
    text, cell = row[0], row[PLATFORMS[platform][0]]
    if cell.startswith("rejected: "):
        with pytest.raises(CronError) as caught:
            translate(text, platform)
        assert_message(caught.value, cell.removeprefix("rejected: "))
        return
    table_string = re.fullmatch(r"`(.+)` OK", cell)
    assert table_string, cell
    ours = translate(text, platform)
    assert len(ours.split()) == 5
    # same meaning as the table's string and as what the user wrote
    assert CronExpr.parse(ours) == CronExpr.parse(table_string.group(1)) == CronExpr.parse(text)
    weekday = ours.split()[4]
    if platform == "cloudflare":  # never weekday digits: Cloudflare counts 1-7 from Sunday
        assert not re.search(r"(^|[,-])\d", weekday), ours
    else:  # digits only, weekdays 0-6
        assert re.fullmatch(r"[0-9*/,\- ]+", ours), ours
        assert not re.search(r"7", weekday), ours


def test_cloudflare_strings_fire_like_croner_on_cloudflares_parser() -> None:
    """Where saffron's vectors cover our Cloudflare string, Cloudflare fires at
    croner's times for the expression the user wrote."""
    checked = 0
    for text, result in CRONER["results"].items():
        croner10 = result["croner10"]
        try:
            ours = translate(text, "cloudflare")
        except CronError:
            continue
        if ours in SAFFRON and croner10["ok"]:
            assert SAFFRON[ours]["ok"], ours
            assert SAFFRON[ours]["runs"] == croner10["runs"], (text, ours)
            checked += 1
    assert checked >= 20


def test_verbatim_weekday_digits_would_shift_on_cloudflare() -> None:
    """Why names: saffron runs Nitro's verbatim '0 12 * * 1-5' Sunday-Thursday."""
    croner = CRONER["results"]["0 12 * * 1-5"]["croner10"]["runs"]
    assert SAFFRON["0 12 * * 1-5"]["runs"] != croner
    assert SAFFRON[translate("0 12 * * 1-5", "cloudflare")]["runs"] == croner


@pytest.mark.parametrize(("text", "frequent"), [
    ("0 0 * * *", False), ("30 9 * * MON-FRI", False), ("@weekly", False),
    ("0 0 1 * *", False), ("0 */12 * * *", True), ("0,30 9 * * *", True),
    ("* * * * *", True), ("@hourly", True), ("0 9 * * * *", True),
])
def test_is_more_frequent_than_daily(text: str, frequent: bool) -> None:
    assert is_more_frequent_than_daily(CronExpr.parse(text)) is frequent


def test_platform_triggers_merge_equal_meanings() -> None:
    schedules = [
        Schedule("0 12 * * 1-5", ("report", "cleanup")),
        Schedule("@daily", ("backup",)),
        Schedule("0 12 * * MON-FRI", ("notify", "report")),
        Schedule("0 0 * * 0-7", ("audit",)),  # every day too
    ]
    assert platform_triggers(schedules, to_cloudflare, config=Config()) == (
        Trigger("0 12 * * MON-FRI", ("report", "cleanup", "notify"),
                ("0 12 * * 1-5", "0 12 * * MON-FRI")),
        Trigger("0 0 * * *", ("backup", "audit"), ("@daily", "0 0 * * 0-7")),
    )
    vercel = platform_triggers(schedules, to_vercel, config=Config())
    assert [t.cron for t in vercel] == ["0 12 * * 1-5", "0 0 * * *"]


def test_platform_triggers_refusal_names_the_key() -> None:
    schedules = [Schedule("0 0 * * *", ("a",)), Schedule("*/2 * * * * *", ("b",))]
    with pytest.raises(ConfigError) as caught:
        platform_triggers(schedules, to_cloudflare, config=Config())
    assert str(caught.value).startswith(
        'taskpack.toml: scheduled_tasks."*/2 * * * * *": Cloudflare Cron Triggers run at '
        "minute resolution")
    with pytest.raises(ConfigError) as caught:
        platform_triggers([Schedule("0 0 1 * 1", ("a",))], to_vercel, config=Config())
    assert caught.value.key == 'scheduled_tasks."0 0 1 * 1"'
    assert "Split it into two schedules" in caught.value.message


def test_require_utc_names_the_timezone_key() -> None:
    require_utc(Config(), "Cloudflare")
    require_utc(Config(timezone="Etc/UTC"), "Cloudflare")
    with pytest.raises(ConfigError) as caught:
        require_utc(Config(timezone="Europe/Berlin"), "Vercel")
    assert caught.value.key == "timezone"
    assert str(caught.value).startswith(
        "taskpack.toml: timezone: Vercel runs schedules in UTC only")
    assert utc_only_problem("UTC", "Vercel") is None
