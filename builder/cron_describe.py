"""Plain-English descriptions of cron expressions (``taskpack cron``).

``describe(CronExpr.parse("0 12 * * 1-5"))`` is ``"At 12:00 on Monday
through Friday"``. Phrasing follows crontab.guru: a fixed time of day when
there is one, else the second/minute/hour fields in turn, then the days and
months.
"""

from __future__ import annotations

from taskpack.cron import (
    CronExpr,
    DayList,
    LastDay,
    NearestWeekday,
    NthWeekday,
    Values,
    WeekdaySet,
    nth_order,
)

WEEKDAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
MONTHS = ("", "January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")
ORDINALS = ("", "first", "second", "third", "fourth", "fifth")


def describe(expr: CronExpr) -> str:
    """One sentence saying when ``expr`` fires (wall-clock times)."""
    parts = [_time_of_day(expr)]
    days = _days(expr)
    if days:
        parts.append(days)
    if len(expr.months) < 12:
        parts.append("in " + _listing(expr.months, MONTHS))
    sentence = " ".join(parts)
    return sentence[0].upper() + sentence[1:]


def _time_of_day(expr: CronExpr) -> str:
    seconds, minutes, hours = expr.seconds, expr.minutes, expr.hours
    if len(minutes) == 1 and len(hours) == 1 and len(seconds) == 1:
        clock = f"{_one(hours):02d}:{_one(minutes):02d}"
        return f"at {clock}:{_one(seconds):02d}" if expr.has_seconds else f"at {clock}"
    phrases = []
    if expr.has_seconds:
        phrases.append(_unit(seconds, expr.canonical.split()[0], "second", 0, 59))
    canonical = expr.canonical.split()[1 if expr.has_seconds else 0:]
    if minutes != frozenset(range(60)) or not phrases:
        phrases.append(_unit(minutes, canonical[0], "minute", 0, 59))
    if len(hours) < 24:
        phrases.append(_unit(hours, canonical[1], "hour", 0, 23))
    text = " past ".join(phrases)
    return text if text.startswith("every") else f"at {text}"


def _unit(values: Values, token: str, unit: str, low: int, high: int) -> str:
    """``every minute``, ``every 15th minute``, ``every 2nd hour from 9
    through 17``, ``minute 0``, ``hour 9 and 17``."""
    if len(values) == high - low + 1:
        return f"every {unit}"
    if "/" in token:
        base, step = token.split("/")
        phrase = f"every {_ordinal_number(int(step))} {unit}"
        if base != "*":
            first, last = base.split("-")
            phrase += f" from {first} through {last}"
        return phrase
    return f"{unit} {_listing(values)}"


def _days(expr: CronExpr) -> str:
    dom, dow = expr.days_of_month, expr.days_of_week
    dom_text = ""
    if isinstance(dom, LastDay):
        dom_text = "on the last day of the month"
    elif isinstance(dom, NearestWeekday):
        dom_text = f"on the weekday nearest day-of-month {dom.day}"
    elif isinstance(dom, DayList):
        parts = [f"day-of-month {_listing(dom.days)}"] if dom.days else []
        parts += ["the last day of the month"] * dom.last
        parts += [f"the weekday nearest day-of-month {n}" for n in sorted(dom.nearest)]
        dom_text = "on " + _join(parts)
    elif dom is not None:
        dom_text = "on day-of-month " + _listing(dom)
    dow_text = ""
    if isinstance(dow, NthWeekday):
        dow_text = f"on the {_nth(dow)} of the month"
    elif isinstance(dow, WeekdaySet):
        parts = [_listing(dow.days, WEEKDAYS)] if dow.days else []
        parts += [f"the {_nth(item)}" for item in
                  sorted(dow.nth, key=nth_order)]
        dow_text = f"on {_join(parts)} of the month"
    elif dow is not None:
        dow_text = "on " + _listing(dow, WEEKDAYS)
    if dom_text and dow_text:
        return f"{dom_text} or {dow_text}"
    return dom_text or dow_text


def _nth(item: NthWeekday) -> str:
    which = "last" if item.nth is None else ORDINALS[item.nth]
    return f"{which} {WEEKDAYS[item.weekday]}"


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"


def _one(values: Values) -> int:
    return next(iter(values))


def _ordinal_number(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _listing(values: Values, names: tuple[str, ...] | None = None) -> str:
    """``1, 5 and 9``; runs of three or more as ``Monday through Friday``."""
    def show(value: int) -> str:
        return names[value] if names else str(value)

    items: list[str] = []
    ordered = sorted(values)
    start = 0
    while start < len(ordered):
        end = start
        while end + 1 < len(ordered) and ordered[end + 1] == ordered[end] + 1:
            end += 1
        if end - start >= 2:
            items.append(f"{show(ordered[start])} through {show(ordered[end])}")
        else:
            items.extend(show(v) for v in ordered[start:end + 1])
        start = end + 1
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"
