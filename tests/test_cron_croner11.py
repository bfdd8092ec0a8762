"""Where taskpack follows croner 11: its list forms of L, W and # (``15,L``,
``1W,15W``, ``MON-FRIL``, ``SAT-SUN#L,SUN#1``...), fired at croner 11's
times (also across DST changes) and refused with a reason where a platform
cannot be trusted to read them the same way; and its daylight-saving rules,
which differ from croner 10's.

The expected times were computed by real croner under Node:
``tests/data/croner11_lists.json`` (``croner11_lists.js`` regenerates it)
and ``tests/data/croner_dst.json`` (``croner_dst.js``).
"""

from __future__ import annotations

import json
from datetime import datetime
from itertools import islice

import pytest

from taskpack.builder.cron_describe import describe
from taskpack.builder.dialects import (
    to_aws_scheduler,
    to_cloudflare,
    to_kubernetes,
    to_vercel,
)
from taskpack.cron import CronError, CronExpr, DayList, NthWeekday, WeekdaySet
from tests.test_cron import DATA

CASES = json.loads((DATA / "croner11_lists.json").read_text())["results"]
DST = json.loads((DATA / "croner_dst.json").read_text())["results"]


def iso(times: list[datetime]) -> list[str]:
    return [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in times]


@pytest.mark.parametrize("case", CASES, ids=[c["pattern"] for c in CASES])
def test_fire_times_are_croner_11s(case: dict[str, object]) -> None:
    pattern, timezone, runs = case["pattern"], case["timezone"], case["runs"]
    assert isinstance(pattern, str) and isinstance(runs, dict)
    if timezone is None:  # taskpack refuses it on purpose
        with pytest.raises(CronError, match="only be used when the other day field is"):
            CronExpr.parse(pattern)
        return
    expr = CronExpr.parse(pattern)
    assert expr.uses_extension_lists
    assert CronExpr.parse(expr.canonical) == expr  # the normal form means the same
    for start, expected in runs.items():
        after = datetime.fromisoformat(start.replace("Z", "+00:00"))
        assert iso(list(islice(expr.iter_after(after, str(timezone)), 6))) == expected, start


def test_single_forms_keep_their_types() -> None:
    """One item keeps its single form (what the platforms take), as before."""
    assert CronExpr.parse("0 0 * * FRIL").days_of_week == NthWeekday(5, None)
    assert CronExpr.parse("0 0 * * MON#2").days_of_week == NthWeekday(1, 2)
    assert not CronExpr.parse("0 0 L * *").uses_extension_lists
    assert CronExpr.parse("0 0 * * MON-FRIL").days_of_week == WeekdaySet(
        frozenset(), frozenset(NthWeekday(d, None) for d in range(1, 6)))
    assert CronExpr.parse("0 0 1-3,L,9W * *").days_of_month == DayList(
        frozenset({1, 2, 3}), True, frozenset({9}))


@pytest.mark.parametrize(("pattern", "message"), [
    ("0 0 15,LW * *", "unsupported day-of-month item 'LW' in '15,LW'"),
    ("0 0 L-2,15 * *", "unsupported day-of-month item 'L-2' in 'L-2,15'"),
    ("0 0 1W,30W * *", "'30W': W is only accepted for days 1-28"),
    ("0 0 * * MON#L-FRI,SUN", "unsupported day-of-week item 'MON#L-FRI' in 'MON#L-FRI,SUN'"),
    ("0 0 * * MON-FRI#6", "'MON-FRI#6': the occurrence after '#' must be 1-5 or L"),
    ("0 0 * * 5-3L", "wrap-around range '5-3'"),
    ("0 0 15,L * MON", "L/W/# may only be used when the other day field is '*'"),
])
def test_refused_with_a_reason(pattern: str, message: str) -> None:
    with pytest.raises(CronError) as caught:
        CronExpr.parse(pattern)
    assert str(caught.value).startswith(message)


def test_described_in_words() -> None:
    assert describe(CronExpr.parse("0 0 15,L * *")) == (
        "At 00:00 on day-of-month 15 and the last day of the month")
    assert describe(CronExpr.parse("0 0 * * MON,FRIL")) == (
        "At 00:00 on Monday and the last Friday of the month")


@pytest.mark.parametrize("pattern", ["0 0 15,L * *", "0 0 1W,15W * *", "0 0 * * MON-FRIL",
                                     "0 0 * * SAT-SUN#L,SUN#1"])
def test_platforms_refuse_them_with_the_split_to_write(pattern: str) -> None:
    expr = CronExpr.parse(pattern)
    for translate in (to_cloudflare, to_aws_scheduler):
        with pytest.raises(CronError) as caught:
            translate(expr)
        written = str(caught.value).split("one schedule per item instead: ")[1]
        items = [CronExpr.parse(text.strip("'")) for text in
                 written.removesuffix(" (a day matching two items then runs twice)").split(", ")]
        assert items == list(expr.split_lists()) and len(items) > 1
    for translate in (to_vercel, to_kubernetes):
        with pytest.raises(CronError, match="do not support L, W or #"):
            translate(expr)


@pytest.mark.parametrize("case", DST, ids=[f"{c['pattern']} {c['timezone']} {c['start']}"
                                           for c in DST])
def test_daylight_saving_follows_croner_11(case: dict[str, str]) -> None:
    after = datetime.fromisoformat(case["start"].replace("Z", "+00:00"))
    runs = islice(CronExpr.parse(case["pattern"]).iter_after(after, case["timezone"]), 5)
    assert iso(list(runs)) == case["croner11"]


def test_where_croner_10_differs_is_what_the_docs_say() -> None:
    """docs/cron.md lists croner 10's DST behaviour; these are its cases."""
    differ = {(c["pattern"], c["timezone"], c["shows"]) for c in DST
              if c["croner10"] != c["croner11"]}
    assert differ == {
        ("30 2 * * *", "Europe/Berlin", "fixed time in the spring-forward gap"),
        ("*/30 * * * *", "Europe/Berlin", "interval through spring-forward"),
        ("*/30 * * * *", "Europe/Berlin", "interval through fall-back"),
        ("15 * * * *", "America/New_York", "interval through fall-back"),
    }
