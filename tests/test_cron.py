"""taskpack.cron: the dialect, its refusals, evaluation and DST rules.

Ground truth: croner 10's own fire times (tests/data/croner.json) and the
refusal messages of tests/data/translations.md; an independent brute-force
matcher for the property tests.
"""

from __future__ import annotations

import calendar
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import islice, pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from taskpack.cron import CronError, CronExpr

DATA = Path(__file__).parent / "data"
CRONER = json.loads((DATA / "croner.json").read_text())
START = datetime.fromisoformat(CRONER["start"].replace("Z", "+00:00"))
TABLE_CUT = 110  # translations.md cuts "rejected: <message>" at 120 characters


def table_rows() -> list[list[str]]:
    """translations.md as rows of cells (expression, in-process, Cloudflare, Vercel)."""
    rows = []
    for line in (DATA / "translations.md").read_text().splitlines():
        if not line.startswith("| `"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        rows.append([cells[0].strip("`"), *cells[1:]])
    return rows


def assert_message(error: CronError, expected: str) -> None:
    """``expected`` is a table cell's message: a prefix when the table cut it."""
    message = str(error)
    if len(expected) >= TABLE_CUT - 1:
        assert message.startswith(expected), (message, expected)
    else:
        assert message == expected


def iso(times: list[datetime]) -> list[str]:
    return [t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") for t in times]


# Expressions croner 10 accepts that taskpack refuses on purpose, and why.
DELIBERATE_DIFFERENCES = {
    "0 0 ? * MON": "croner 10 reads '?' as every day (runs daily); croner 11 as '*'",
    "0 0 1 * ?": "'?' means different things in croner 10 and 11",
    "0 0 1 * +MON": "the '+' AND modifier exists only in croner",
    "0 0 0 1 1 * 2027": "no year field on Cloudflare/Vercel; croniter stops at 2099",
    "0 0 30 2 *": "never fires: croner returns no runs, we refuse at load time",
    "0 0 30W * *": "29W-31W: croner skips short months, croniter clamps",
    "0 0 31W * *": "29W-31W: croner skips short months, croniter clamps",
    "0 0 LW * *": "LW is not portable (croniter and Vercel lack it)",
    "0 12 L * 5": "L/W/# with the other day field set: engines combine differently",
    "0 0 L * 5#L": "L/W/# with the other day field set: engines combine differently",
}


# -- conformance with croner 10 ---------------------------------------------------


@pytest.mark.parametrize("text", sorted(CRONER["results"]))
def test_conformance_with_croner10(text: str) -> None:
    croner10 = CRONER["results"][text]["croner10"]
    if text in DELIBERATE_DIFFERENCES:
        assert croner10["ok"], "a deliberate difference must be something croner accepts"
        with pytest.raises(CronError):
            CronExpr.parse(text)
    elif croner10["ok"]:
        expr = CronExpr.parse(text)
        assert iso(list(islice(expr.iter_after(START), CRONER["n"]))) == croner10["runs"]
    else:
        with pytest.raises(CronError):
            CronExpr.parse(text)


@pytest.mark.parametrize("row", table_rows(), ids=lambda row: row[0])
def test_refusal_messages_of_translations_table(row: list[str]) -> None:
    text, in_process = row[0], row[1]
    if in_process == "OK":
        CronExpr.parse(text)
        return
    with pytest.raises(CronError) as caught:
        CronExpr.parse(text)
    assert_message(caught.value, in_process.removeprefix("rejected: "))


@pytest.mark.parametrize(("text", "message"), [
    ("R * * * *", "'H'/'R' (croniter hash/random) is not croner syntax"),
    ("H/5 * * * *", "'H'/'R' (croniter hash/random) is not croner syntax"),
    ("0 0 1,? * *", "'?' is not supported"),
    ("* * * *", "expected 5 fields"),
    ("0 0 0 1 1 * * *", "expected 5 fields"),
    ("", "empty cron expression"),
    ("@every", "unknown nickname '@every'"),
    ("@REBOOT", "@reboot is not a schedule"),
    ("0 24 * * *", "hour value 24 is out of range 0-23"),
    ("60 * * * *", "minute value 60 is out of range 0-59"),
    ("0 0 * 13 *", "month value 13 is out of range 1-12"),
    ("0 0 * * 8", "dow value 8 is out of range 0-7"),
    ("0 0 32 * *", "dom value 32 is out of range 1-31"),
    ("0 0 0W * *", "dom value 0 is out of range 1-31"),
    ("*/61 * * * *", "minute field: the step in '*/61' must be a number 1-60"),
    ("*/0 * * * *", "minute field: the step in '*/0' must be a number 1-60"),
    ("0 0 * * 1-5/8", "dow field: the step in '1-5/8' must be a number 1-7"),
    ("0 0 * * MON/2", "'MON/2': a step needs '*' or a range before '/'"),
    ("0 0 * DEC-JAN *", "wrap-around range '12-1' is rejected by croner"),
    ("0 0 * * 1,", "empty list item in dow field '1,'"),
    ("0 0 * * FOO", "dow field: 'FOO' in 'FOO' is not a number or a name"),
    ("0 JAN * * *", "hour field: 'JAN' in 'JAN' is not a number"),
    ("0 0 * * 1#6", "'1#6': the occurrence after '#' must be 1-5 or L"),
    ("0 0 * * 1#2,L", "unsupported day-of-week item 'L' in '1#2,L'"),
    ("0 0 1,LW * *", "unsupported day-of-month item 'LW' in '1,LW'"),
    ("0 0 5-10W * *", "unsupported day-of-month '5-10W'"),
    ("0 0 31 4,6,9,11 *", "this schedule never fires"),
])
def test_refusals(text: str, message: str) -> None:
    with pytest.raises(CronError) as caught:
        CronExpr.parse(text)
    assert str(caught.value).startswith(message), str(caught.value)


def test_cron_error_is_a_value_error() -> None:
    assert issubclass(CronError, ValueError)
    with pytest.raises(CronError):
        CronExpr.parse(None)  # type: ignore[arg-type]


# -- croner's dialect beyond the vectors (checked against croner 10.0.1) -----------


@pytest.mark.parametrize(("text", "same_as"), [
    ("0 0 * * FRI-SUN", "0 0 * * 5-7"),  # croner: a range ending on SUN ends on 7
    ("0 0 * * sun-sun", "0 0 * * *"),  # ... so this is 0-7, every day (as croner)
    ("0 0 * * SUN-TUE", "0 0 * * 0-2"),
    ("0 0 * * 7#1", "0 0 * * SUN#1"),
    ("0 0 * * 0L", "0 0 * * SUNL"),
    ("0 0 * * fri#l", "0 0 * * 5L"),
    ("0 0 l * *", "0 0 L * *"),
    ("0 0 15w * *", "0 0 15W * *"),
    ("*/60 * * * *", "0 * * * *"),
    ("0-59/60 * * * *", "0 * * * *"),
    ("0 0 * jan-mar/2 *", "0 0 * 1,3 *"),
    (" 0  0 * * 1 ", "0 0 * * MON"),
    ("@YEARLY", "0 0 1 1 *"),
    ("@annually", "@yearly"),
    ("@Midnight", "@daily"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 7"),
    ("@hourly", "0 * * * *"),
    # both day fields restricted: either matches, so a full one means every day
    ("0 0 */1 * MON", "0 0 * * *"),
    ("0 0 1 * 0-7", "0 0 * * *"),
    ("0 0 1-31 * *", "0 0 * * *"),
    # seconds 0 written or not
    ("0 30 9 * * 1-5", "30 9 * * MON-FRI"),
    ("0 12 * * 1-5", "0 12 * * MON-FRI"),
    # same instants, different fields
    ("0 0 30 2 MON", "0 0 * 2 MON"),
    ("0 0 L 1 *", "0 0 31 1 *"),
    ("0 0 L 4,6 *", "0 0 30 4,6 *"),
    ("0 0 31 * *", "0 0 31 1,3,5,7,8,10,12 *"),
    ("0 0 30,31 * *", "0 0 30-31 1,3-12 *"),
])
def test_equal_by_meaning(text: str, same_as: str) -> None:
    a, b = CronExpr.parse(text), CronExpr.parse(same_as)
    assert a == b
    assert hash(a) == hash(b)
    assert len({a, b}) == 1


@pytest.mark.parametrize(("text", "other"), [
    ("0 0 1 * 1", "0 0 1 * *"),
    ("0 0 L 2 *", "0 0 28 2 *"),
    ("0 0 L * *", "0 0 31 * *"),
    ("0 0 * * 5L", "0 0 * * 5#4"),
    ("0 0 1W * *", "0 0 1 * *"),
    ("30 0 0 * * *", "0 0 * * *"),
])
def test_not_equal(text: str, other: str) -> None:
    assert CronExpr.parse(text) != CronExpr.parse(other)


def test_attributes() -> None:
    expr = CronExpr.parse("0 30 9 * * mon-fri")
    assert expr.source == "0 30 9 * * mon-fri"
    assert expr.canonical == "30 9 * * 1-5"
    assert str(expr) == expr.canonical
    assert not expr.has_seconds
    assert CronExpr.parse("*/2 * * * * *").has_seconds
    assert CronExpr.parse("*/2 * * * * *").canonical == "*/2 * * * * *"
    assert CronExpr.parse("0 0 * * 5#L").canonical == "0 0 * * 5L"
    assert CronExpr.parse("0 0 * * 6,0").canonical == "0 0 * * 0,6"
    assert CronExpr.parse("1-59/15 * * * *").canonical == "1-46/15 * * * *"
    with pytest.raises(AttributeError):
        expr.source = "x"  # type: ignore[misc]


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        CronExpr.parse("* * * * *").next_after(datetime(2026, 1, 1))


def test_next_after_is_strictly_after_and_accepts_any_zone() -> None:
    expr = CronExpr.parse("0 * * * *")
    assert expr.next_after(datetime(2026, 1, 1, 12, tzinfo=UTC)) == datetime(
        2026, 1, 1, 13, tzinfo=UTC)
    berlin = datetime(2026, 1, 1, 13, 0, 0, 500, tzinfo=ZoneInfo("Europe/Berlin"))  # 12:00Z
    assert expr.next_after(berlin) == datetime(2026, 1, 1, 13, tzinfo=UTC)


def test_fires_after_2099_and_stops_at_the_end_of_9999() -> None:
    """Fire times go on past 2099 (where cron's 7-field year ranges stop);
    after the last day a datetime holds, a :class:`CronError` says no fire
    is left (the scheduler logs it)."""
    assert CronExpr.parse("0 0 1 1 *").next_after(datetime(2099, 6, 1, tzinfo=UTC)) == datetime(
        2100, 1, 1, tzinfo=UTC)
    assert CronExpr.parse("0 0 * 2 FRI#5").next_after(datetime(2099, 1, 1, tzinfo=UTC)) == (
        datetime(2104, 2, 29, tzinfo=UTC))
    end = datetime(9999, 12, 31, 12, tzinfo=UTC)
    assert CronExpr.parse("30 12 * * *").next_after(end) == end.replace(minute=30)
    with pytest.raises(CronError, match="no fire time"):
        CronExpr.parse("0 0 * * *").next_after(end)


def test_every_second_over_a_day_and_a_month_boundary() -> None:
    """The first fires after a time mid-second, at the end of a day and of
    a month skipped by the month field."""
    every = CronExpr.parse("* * * * * *")
    start = datetime(2026, 1, 31, 23, 59, 58, 500_000, tzinfo=UTC)
    assert iso(list(islice(every.iter_after(start), 3))) == [
        "2026-01-31T23:59:59Z", "2026-02-01T00:00:00Z", "2026-02-01T00:00:01Z"]
    in_march = CronExpr.parse("*/20 59 23 * 3 *")
    assert iso(list(islice(in_march.iter_after(start), 4))) == [
        "2026-03-01T23:59:00Z", "2026-03-01T23:59:20Z", "2026-03-01T23:59:40Z",
        "2026-03-02T23:59:00Z"]


# -- DST at the real 2026 transitions --------------------------------------------

NEW_YORK, BERLIN = "America/New_York", "Europe/Berlin"


def fires(text: str, start: str, tz: str, n: int) -> list[str]:
    begin = datetime.fromisoformat(start)
    return iso(list(islice(CronExpr.parse(text).iter_after(begin, tz), n)))


def test_dst_new_york_spring_forward_fixed_time_fires_once_after_the_gap() -> None:
    # 2026-03-08 02:00 EST -> 03:00 EDT (07:00Z): 02:30 does not exist that day
    assert fires("30 2 * * *", "2026-03-07T00:00:00+00:00", NEW_YORK, 3) == [
        "2026-03-07T07:30:00Z", "2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"]
    # every minute of 02:xx collapses into one fire at 03:00 EDT
    assert fires("* 2 * * *", "2026-03-08T06:58:00+00:00", NEW_YORK, 3) == [
        "2026-03-08T07:00:00Z", "2026-03-09T06:00:00Z", "2026-03-09T06:01:00Z"]


def test_dst_new_york_fall_back_fixed_time_fires_once_at_first_occurrence() -> None:
    # 2026-11-01 02:00 EDT -> 01:00 EST (06:00Z): 01:30 happens twice
    assert fires("30 1 * * *", "2026-10-31T00:00:00+00:00", NEW_YORK, 3) == [
        "2026-10-31T05:30:00Z", "2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"]
    # starting inside the second 01:xx, the repeated 01:45 is not fired again
    assert fires("45 1 * * *", "2026-11-01T06:10:00+00:00", NEW_YORK, 1) == [
        "2026-11-02T06:45:00Z"]


def test_dst_new_york_interval_follows_elapsed_time() -> None:
    assert fires("*/30 * * * *", "2026-03-08T05:00:00+00:00", NEW_YORK, 5) == [
        "2026-03-08T05:30:00Z", "2026-03-08T06:00:00Z", "2026-03-08T06:30:00Z",
        "2026-03-08T07:00:00Z", "2026-03-08T07:30:00Z"]
    assert fires("*/30 * * * *", "2026-11-01T04:00:00+00:00", NEW_YORK, 8) == [
        "2026-11-01T04:30:00Z", "2026-11-01T05:00:00Z", "2026-11-01T05:30:00Z",
        "2026-11-01T06:00:00Z", "2026-11-01T06:30:00Z", "2026-11-01T07:00:00Z",
        "2026-11-01T07:30:00Z", "2026-11-01T08:00:00Z"]
    # the hourly schedule neither skips nor doubles an hour
    assert fires("30 * * * *", "2026-03-08T05:00:00+00:00", NEW_YORK, 3) == [
        "2026-03-08T05:30:00Z", "2026-03-08T06:30:00Z", "2026-03-08T07:30:00Z"]
    assert fires("0 * * * *", "2026-11-01T04:30:00+00:00", NEW_YORK, 4) == [
        "2026-11-01T05:00:00Z", "2026-11-01T06:00:00Z", "2026-11-01T07:00:00Z",
        "2026-11-01T08:00:00Z"]


def test_dst_berlin() -> None:
    # 2026-03-29 02:00 CET -> 03:00 CEST (01:00Z); 2026-10-25 03:00 CEST -> 02:00 CET (01:00Z)
    assert fires("30 2 * * *", "2026-03-28T00:00:00+00:00", BERLIN, 3) == [
        "2026-03-28T01:30:00Z", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"]
    assert fires("30 2 * * *", "2026-10-24T00:00:00+00:00", BERLIN, 3) == [
        "2026-10-24T00:30:00Z", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]
    assert fires("*/30 * * * *", "2026-03-29T00:00:00+00:00", BERLIN, 4) == [
        "2026-03-29T00:30:00Z", "2026-03-29T01:00:00Z", "2026-03-29T01:30:00Z",
        "2026-03-29T02:00:00Z"]
    assert fires("*/30 * * * *", "2026-10-24T23:00:00+00:00", BERLIN, 6) == [
        "2026-10-24T23:30:00Z", "2026-10-25T00:00:00Z", "2026-10-25T00:30:00Z",
        "2026-10-25T01:00:00Z", "2026-10-25T01:30:00Z", "2026-10-25T02:00:00Z"]


def test_dst_every_second_through_fall_back() -> None:
    assert fires("* * * * * *", "2026-11-01T05:59:58+00:00", NEW_YORK, 3) == [
        "2026-11-01T05:59:59Z", "2026-11-01T06:00:00Z", "2026-11-01T06:00:01Z"]


def test_dst_property_in_zones() -> None:
    """Through a whole 2026 day of each transition, every 7 minutes: strictly
    increasing, and each fire is a matching local time or a gap's end."""
    for tz, day in ((NEW_YORK, "2026-03-08"), (NEW_YORK, "2026-11-01"),
                    (BERLIN, "2026-03-29"), (BERLIN, "2026-10-25")):
        zone = ZoneInfo(tz)
        for text in ("*/7 * * * *", "*/7 1-3 * * *"):
            expr = CronExpr.parse(text)
            begin = datetime.fromisoformat(day).replace(tzinfo=zone)
            times = list(islice(expr.iter_after(begin, tz), 60))
            assert all(a < b for a, b in pairwise(times))
            for t in times:
                local = t.astimezone(zone)
                on_time = local.minute % 7 == 0 and local.second == 0
                at_gap_end = local.utcoffset() != (t - timedelta(seconds=1)).astimezone(
                    zone).utcoffset()
                assert on_time or at_gap_end, (text, tz, local)


# -- property tests against an independent matcher -------------------------------

BOUNDS = {"second": (0, 59), "minute": (0, 59), "hour": (0, 23), "dom": (1, 31),
          "month": (1, 12), "dow": (0, 7)}
MONTHS = [name.upper() for name in calendar.month_abbr]
DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]


@dataclass(frozen=True)
class Written:
    """An expression as generated, with what each field must mean."""

    text: str
    sets: dict[str, frozenset[int]]
    dom: str  # "*", "set", "L" or "NW"
    dow: str  # "*", "set", "#" or "L"
    nearest: int = 0
    weekday: int = 0
    nth: int = 0


def _name(value: int, field: str, draw: st.DrawFn) -> str:
    if field == "month" and draw(st.booleans()):
        return MONTHS[value]
    if field == "dow" and value < 7 and draw(st.booleans()):
        return DAYS[value].lower() if draw(st.booleans()) else DAYS[value]
    return str(value)


@st.composite
def items(draw: st.DrawFn, field: str) -> tuple[str, set[int]]:
    low, high = BOUNDS[field]
    step_low, step_high = (0, 6) if field == "dow" else (low, high)
    kind = draw(st.sampled_from(["value", "range", "star_step", "range_step"]))
    size = step_high - step_low + 1
    if kind == "value":
        value = draw(st.integers(low, high))
        return _name(value, field, draw), {value}
    if kind == "star_step":
        step = draw(st.integers(1, size))
        return f"*/{step}", set(range(step_low, step_high + 1, step))
    start = draw(st.integers(low, high))
    end = draw(st.integers(start, high))
    end_text = _name(end, field, draw)
    if end_text.upper() == "SUN":
        end = 7  # as croner: a range ending on SUN ends on 7
    text = f"{_name(start, field, draw)}-{end_text}"
    if kind == "range":
        return text, set(range(start, end + 1))
    step = draw(st.integers(1, size))
    return f"{text}/{step}", set(range(start, end + 1, step))


@st.composite
def field_token(draw: st.DrawFn, field: str) -> tuple[str, frozenset[int]]:
    if draw(st.integers(0, 3)) == 0:
        low, high = BOUNDS[field]
        return "*", frozenset(range(low, 7 if field == "dow" else high + 1))
    parts = draw(st.lists(items(field), min_size=1, max_size=3))
    values = set().union(*(v for _, v in parts))
    if field == "dow" and 7 in values:
        values = (values - {7}) | {0}
    return ",".join(t for t, _ in parts), frozenset(values)


@st.composite
def expressions(draw: st.DrawFn) -> Written:
    sets: dict[str, frozenset[int]] = {}
    tokens: dict[str, str] = {}
    for field in ("second", "minute", "hour", "month"):
        tokens[field], sets[field] = draw(field_token(field))
    extra: dict[str, int] = {}
    day_kind = draw(st.sampled_from(["plain", "plain", "plain", "L", "NW", "#", "DL"]))
    dom_kind, dow_kind = "*", "*"
    tokens["dom"], tokens["dow"] = "*", "*"
    if day_kind == "plain":
        tokens["dom"], sets["dom"] = draw(field_token("dom"))
        tokens["dow"], sets["dow"] = draw(field_token("dow"))
        dom_kind = "*" if tokens["dom"] == "*" else "set"
        dow_kind = "*" if tokens["dow"] == "*" else "set"
    elif day_kind == "L":
        tokens["dom"], dom_kind = "L", "L"
    elif day_kind == "NW":
        extra["nearest"] = draw(st.integers(1, 28))
        tokens["dom"], dom_kind = f"{extra['nearest']}W", "NW"
    else:
        weekday = draw(st.integers(0, 7))
        extra["weekday"] = weekday % 7
        name = _name(weekday, "dow", draw)
        if day_kind == "#":
            extra["nth"] = draw(st.integers(1, 5))
            tokens["dow"], dow_kind = f"{name}#{extra['nth']}", "#"
        else:
            tokens["dow"] = f"{name}L" if draw(st.booleans()) else f"{name}#L"
            dow_kind = "L"
    order = ["minute", "hour", "dom", "month", "dow"]
    if tokens["second"] != "0" or draw(st.booleans()):
        order.insert(0, "second")
    else:
        sets["second"] = frozenset({0})
    text = " ".join(tokens[f] for f in order)
    return Written(text, sets, dom_kind, dow_kind, **extra)


def _nearest_weekday(year: int, month: int, day: int) -> int:
    length = calendar.monthrange(year, month)[1]
    weekday = date(year, month, day).weekday()  # Monday 0
    if weekday == 5:
        return day - 1 if day > 1 else day + 2
    if weekday == 6:
        return day + 1 if day < length else day - 2
    return day


def day_matches(w: Written, d: date) -> bool:
    length = calendar.monthrange(d.year, d.month)[1]
    cron_weekday = d.isoweekday() % 7
    dom_ok = {
        "*": True, "set": d.day in w.sets.get("dom", frozenset()), "L": d.day == length,
        "NW": w.dom == "NW" and d.day == _nearest_weekday(d.year, d.month, w.nearest),
    }[w.dom]
    dow_ok = {
        "*": True, "set": cron_weekday in w.sets.get("dow", frozenset()),
        "#": cron_weekday == w.weekday and (d.day - 1) // 7 + 1 == w.nth,
        "L": cron_weekday == w.weekday and d.day + 7 > length,
    }[w.dow]
    if w.dom == "set" and w.dow == "set":
        return dom_ok or dow_ok
    return dom_ok and dow_ok


def oracle_next(w: Written, after: datetime) -> datetime:
    """Brute force: the first matching second after ``after`` (naive UTC)."""
    day = after.date()
    for _ in range(366 * 40):
        if day.month in w.sets["month"] and day_matches(w, day):
            for h in sorted(w.sets["hour"]):
                for m in sorted(w.sets["minute"]):
                    for s in sorted(w.sets["second"]):
                        t = datetime(day.year, day.month, day.day, h, m, s)
                        if t > after:
                            return t
        day += timedelta(days=1)
    raise AssertionError("no fire time within 40 years")


@settings(max_examples=300, deadline=None)
@given(expressions(), st.datetimes(min_value=datetime(2020, 1, 1),
                                   max_value=datetime(2040, 1, 1)))
def test_property_parse_canonical_and_fire_times(w: Written, start: datetime) -> None:
    try:
        expr = CronExpr.parse(w.text)
    except CronError as exc:
        assume("never fires" not in str(exc))
        raise
    # parse -> canonical -> parse is the identity
    again = CronExpr.parse(expr.canonical)
    assert again == expr
    assert again.canonical == expr.canonical
    # the platform renderings mean the same in taskpack's dialect
    for names in (True, False):
        assert CronExpr.parse(expr.render(weekday_names=names)) == expr
    # fire times: strictly increasing, and exactly the brute-force ones
    times = list(islice(expr.iter_after(start.replace(tzinfo=UTC)), 4))
    assert all(a < b for a, b in pairwise(times))
    expected, cursor = [], start
    for _ in range(4):
        cursor = oracle_next(w, cursor)
        expected.append(cursor.replace(tzinfo=UTC))
    assert times == expected, (w.text, expr.canonical)


TRANSITIONS_2026 = [  # (zone, the instant the offset changes)
    (NEW_YORK, datetime(2026, 3, 8, 7, tzinfo=UTC)),
    (NEW_YORK, datetime(2026, 11, 1, 6, tzinfo=UTC)),
    (BERLIN, datetime(2026, 3, 29, 1, tzinfo=UTC)),
    (BERLIN, datetime(2026, 10, 25, 1, tzinfo=UTC)),
]


@st.composite
def times_of_day(draw: st.DrawFn) -> Written:
    """Every-day expressions (the DST rules concern the time of day)."""
    sets, tokens = {}, {}
    for field in ("second", "minute", "hour"):
        tokens[field], sets[field] = draw(field_token(field))
    sets["month"] = frozenset(range(1, 13))
    text = " ".join([tokens["second"], tokens["minute"], tokens["hour"], "*", "*", "*"])
    return Written(text, sets, "*", "*")


def wall_matches(w: Written, local: datetime) -> bool:
    return (local.second in w.sets["second"] and local.minute in w.sets["minute"]
            and local.hour in w.sets["hour"] and day_matches(w, local.date()))


def oracle_zoned(w: Written, tz: str, start: datetime, end: datetime,
                 interval: bool) -> list[datetime]:
    """The DST rules, by brute force over instants in ``(start, end]``: a matching
    local time fires (only its first occurrence unless ``interval``); a gap
    fires once at its end if a wall time inside it matches (unless ``interval``)."""
    zone = ZoneInfo(tz)
    step = timedelta(seconds=1 if w.sets["second"] != frozenset({0}) else 60)
    fires: list[datetime] = []
    t = start - timedelta(seconds=start.second % step.seconds) + step
    while t <= end:
        local = t.astimezone(zone)
        before = (t - step).astimezone(zone).utcoffset()
        after = local.utcoffset()
        assert before is not None and after is not None
        if not interval and after > before:  # the gap's walls fire at its end, t
            wall = (t.replace(tzinfo=None) + before)
            while wall < t.replace(tzinfo=None) + after:
                if wall_matches(w, wall):
                    fires.append(t)
                    break
                wall += step
        if wall_matches(w, local) and (interval or local.fold == 0) and t not in fires:
            fires.append(t)
        t += step
    return fires


@settings(max_examples=150, deadline=None)
@given(times_of_day(), st.sampled_from(TRANSITIONS_2026), st.floats(0, 1))
def test_property_dst_rules_against_brute_force(w: Written, transition: tuple[str, datetime],
                                                position: float) -> None:
    """Around each 2026 transition: 90 min before to 2 h after (10 min each
    way for expressions with seconds, which fire up to every second)."""
    tz, change = transition
    expr = CronExpr.parse(w.text)
    before, after = (600, 600) if expr.has_seconds else (5400, 7200)
    start = change - timedelta(seconds=int(before * position))
    end = change + timedelta(seconds=after)
    ours = []
    for t in expr.iter_after(start, tz):
        if t > end:
            break
        ours.append(t)
    assert ours == oracle_zoned(w, tz, start, end, expr.is_interval), w.text
