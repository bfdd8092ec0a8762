"""taskpack's cron dialect: croner's, minus what does not mean the same everywhere.

:meth:`CronExpr.parse` accepts what Nitro documents (croner 10): 5 fields, or
6 with **seconds first**; ``*``, ``N``, ``N-M``, ``*/S``, ``N-M/S`` and lists;
month and weekday names (any case); weekday 0-7 (0 and 7 are Sunday; ``SUN``
ending a range is 7, as in croner); nicknames (``@yearly`` ... ``@hourly``);
``L`` and ``nW`` (n <= 28) in day-of-month, also in lists (``15,L``,
``1W,15W``); ``D#n``, ``D#L`` and ``DL`` in day-of-week, also on ranges,
steps and in lists (``MON-FRIL``, ``MONL,FRIL``, ``SAT-SUN#L,SUN#1``), as
croner 11 reads them; those extended forms only when the other day field is
``*``. When both day fields are restricted a day matches if EITHER matches.

It refuses, with a :class:`CronError` saying why and what to write instead,
what croner rejects or reads surprisingly (``?``, ``N/S``, wrap-around
ranges, ``+``, ``LW``, ``L-n``), what is not croner syntax (``H``/``R``,
``@reboot``, 7 fields), values out of range, and schedules that never fire.

Evaluation is done here, on wall-clock times of the evaluation zone (UTC
unless given): the days whose date matches (each day field's form knows its
days: ``matches``; both restricted, either), then their times in order.
This module maps wall times to instants with these daylight-saving rules:

- A *fixed-time* schedule (its hour field is not every hour) whose wall time
  does not exist (spring forward) fires once, at the first instant after the
  gap; a wall time that occurs twice (fall back) fires once, at its first
  occurrence.
- An *interval* schedule (every hour, e.g. ``*/30 * * * *``) follows real
  elapsed time: it fires at every instant whose local time matches, so it
  neither skips nor doubles an hour.

Only the standard library is imported: this module is bundled into
deployments, and a server's first evaluation happens while it starts.
"""

from __future__ import annotations

import bisect
import calendar
import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo

__all__ = [
    "UTC_NAMES", "CronError", "CronExpr", "DayList", "LastDay", "NearestWeekday", "NthWeekday",
    "Values", "WeekdaySet", "is_utc", "zone",
]

UTC_NAMES = frozenset({
    "UTC", "Etc/UTC", "Etc/UCT", "UCT", "Etc/Universal", "Universal", "Etc/Zulu", "Zulu",
    "GMT", "Etc/GMT", "Etc/GMT+0", "Etc/GMT-0", "Etc/GMT0", "GMT0", "GMT+0", "GMT-0",
    "Etc/Greenwich", "Greenwich",
})
"""IANA names that always mean UTC."""


class CronError(ValueError):
    """A cron expression taskpack does not accept; ``str()`` is the reason."""


# Field layout: name used in messages, lowest and highest value.
_SECOND, _MINUTE, _HOUR, _DOM, _MONTH, _DOW = range(6)
_LABELS = ("second", "minute", "hour", "dom", "month", "dow")
_BOUNDS = ((0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 6))

_MONTH_NAMES = {name: i + 1 for i, name in enumerate(
    ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"))}
_DAY_NAMES = {"SUN": 0, "MON": 1, "TUE": 2, "WED": 3, "THU": 4, "FRI": 5, "SAT": 6}
_DAY_LABELS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")

_NICKNAMES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

# Longest month of the year (February counts its leap day).
_MONTH_DAYS = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

_HASH_RANDOM = re.compile(r"^[HR](?:$|[(/])")
_NEAREST_WEEKDAY = re.compile(r"^(\d+)W$")
_NTH_WEEKDAY = re.compile(r"^(?P<base>.+?)(?:#(?P<nth>\d+|L)|(?P<last>L))$")
_NUMBER = re.compile(r"^\d+$")

Zone = tzinfo
Values = frozenset[int]


@dataclass(frozen=True)
class LastDay:
    """``L`` in day-of-month: the month's last day."""

    def matches(self, day: date) -> bool:
        return _is_last_day(day)


@dataclass(frozen=True)
class NearestWeekday:
    """``nW``: the weekday (Mon-Fri) nearest to ``day`` within its month."""

    day: int

    def matches(self, day: date) -> bool:
        return _nearest_weekday(day.year, day.month, self.day) == day.day


@dataclass(frozen=True)
class NthWeekday:
    """``D#n`` (``nth`` 1-5), or ``D#L``/``DL`` (``nth`` None: the month's last)."""

    weekday: int
    nth: int | None

    def matches(self, day: date) -> bool:
        if _weekday(day) != self.weekday:
            return False
        if self.nth is None:
            return day.day + 7 > _month_length(day)
        return (day.day - 1) // 7 + 1 == self.nth


@dataclass(frozen=True)
class DayList:
    """A day-of-month list with ``L`` or ``nW`` items (``15,L``, ``1W,15W``,
    ``1-3,L``): ``days`` plain days, ``last`` the month's last day,
    ``nearest`` the days whose nearest weekday matches (croner 11's
    reading)."""

    days: Values
    last: bool
    nearest: Values

    def matches(self, day: date) -> bool:
        if day.day in self.days or (self.last and _is_last_day(day)):
            return True
        return any(_nearest_weekday(day.year, day.month, n) == day.day for n in self.nearest)


@dataclass(frozen=True)
class WeekdaySet:
    """A day-of-week list with ``#``/``L`` items or such ranges
    (``MON-FRIL``, ``MONL,FRIL``, ``SAT-SUN#L,SUN#1``, ``MON,FRIL``):
    ``days`` plain weekdays (0-6, 0 = Sunday), ``nth`` the
    :class:`NthWeekday` items (a range ``SUN-MON#3`` is one per weekday)."""

    days: Values
    nth: frozenset[NthWeekday]

    def matches(self, day: date) -> bool:
        return _weekday(day) in self.days or any(item.matches(day) for item in self.nth)


DomSpec = Values | LastDay | NearestWeekday | DayList | None
"""Day-of-month: ``None`` is ``*``."""
DowSpec = Values | NthWeekday | WeekdaySet | None
"""Day-of-week (0-6, 0 = Sunday): ``None`` is ``*``."""


def _month_length(day: date) -> int:
    return calendar.monthrange(day.year, day.month)[1]


def _is_last_day(day: date) -> bool:
    return day.day == _month_length(day)


def _weekday(day: date) -> int:
    """Cron's weekday number of ``day`` (0 = Sunday)."""
    return (day.weekday() + 1) % 7


def _nearest_weekday(year: int, month: int, day: int) -> int:
    """croner's ``nW`` for ``day`` <= 28: ``day`` on Monday-Friday; a
    Saturday moves to Friday (the 1st to Monday the 3rd); a Sunday to Monday."""
    weekday = calendar.weekday(year, month, day)  # Monday = 0
    if weekday == 5:
        return day + 2 if day == 1 else day - 1
    if weekday == 6:
        return day + 1
    return day


@dataclass(frozen=True, eq=False, repr=False)
class CronExpr:
    """A parsed cron expression; immutable, hashable, equal by meaning.

    ``source`` is the text as written; ``canonical`` a normal form (digits,
    weekdays 0-6, ``*`` for full fields, 5 fields unless some second is not
    0) that parses back to an equal expression. When both ``days_of_month``
    and ``days_of_week`` are set, a day matching either fires.
    """

    source: str
    seconds: Values
    minutes: Values
    hours: Values
    days_of_month: DomSpec
    months: Values
    days_of_week: DowSpec
    canonical: str = field(init=False)
    _key: tuple[object, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "canonical", self._render(_render_day_canonical))
        object.__setattr__(self, "_key", _meaning_key(self))

    @classmethod
    def parse(cls, text: str) -> CronExpr:
        """Parse ``text``; :class:`CronError` with the reason if it is refused."""
        if not isinstance(text, str):
            raise CronError(f"a cron expression must be a string, got {type(text).__name__}")
        return _parse(text)

    @property
    def has_seconds(self) -> bool:
        """Whether it fires at a second other than 0 (sub-minute resolution)."""
        return self.seconds != frozenset({0})

    @property
    def is_interval(self) -> bool:
        """Whether it runs every hour; such schedules follow elapsed time
        through DST changes (see the module docstring)."""
        return self.hours == _full(_HOUR)

    @property
    def uses_extensions(self) -> bool:
        """Whether a day field uses ``L``, ``W`` or ``#``."""
        return not (_is_plain(self.days_of_month) and _is_plain(self.days_of_week))

    @property
    def uses_extension_lists(self) -> bool:
        """Whether a day field has ``L``/``W``/``#`` in a list or on a range
        (:class:`DayList`, :class:`WeekdaySet`): croner 11's forms, which no
        platform's parser is known to read the same way."""
        return isinstance(self.days_of_month, DayList) or \
            isinstance(self.days_of_week, WeekdaySet)

    def split_lists(self) -> tuple[CronExpr, ...]:
        """The expression as one expression per item of its list-form day
        field (``0 0 15,L * *`` → ``0 0 15 * *`` and ``0 0 L * *``), for
        platforms that take only the single forms; itself when it has none.
        A day matching two items fires once here but once per item there."""
        dom, dow = self.days_of_month, self.days_of_week
        doms: list[DomSpec] = [dom]
        dows: list[DowSpec] = [dow]
        if isinstance(dom, DayList):
            doms = [dom.days] if dom.days else []
            doms += [LastDay()] * dom.last + [NearestWeekday(n) for n in sorted(dom.nearest)]
        if isinstance(dow, WeekdaySet):
            dows = [dow.days] if dow.days else []
            items: list[NthWeekday] = sorted(dow.nth, key=nth_order)
            dows += items
        return tuple(CronExpr(self.source, self.seconds, self.minutes, self.hours, d, self.months,
                              w) for d in doms for w in dows)

    @property
    def both_days_restricted(self) -> bool:
        """Whether day-of-month and day-of-week are both set (either matches)."""
        return self.days_of_month is not None and self.days_of_week is not None

    def render(self, *, weekday_names: bool) -> str:
        """The expression for another engine: like :attr:`canonical`, but
        weekdays without steps, as names (``SUN,TUE``, ``MON-FRI``, ``MON#2``,
        ``FRIL``) or as digits 0-6 (``0,2``, ``1-5``)."""
        return self._render(_render_day_names if weekday_names else _render_day_digits)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CronExpr):
            return NotImplemented
        return self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)

    def __str__(self) -> str:
        return self.canonical

    def __repr__(self) -> str:
        return f"CronExpr.parse({self.source!r})"

    # -- evaluation --------------------------------------------------------

    def next_after(self, dt: datetime, timezone: str | Zone | None = None) -> datetime:
        """The first fire time strictly after the aware datetime ``dt``.

        Wall times are those of ``timezone`` (an IANA name or a tzinfo; UTC
        by default), with the DST rules of the module docstring. The result
        is aware and in UTC (datetimes sharing a ``ZoneInfo`` compare by wall
        time, ignoring ``fold``: convert with ``astimezone`` only to display).
        ``ValueError`` for a naive ``dt``.
        """
        return next(self.iter_after(dt, timezone))

    def iter_after(self, dt: datetime, timezone: str | Zone | None = None) -> Iterator[datetime]:
        """Fire times strictly after ``dt``, ascending, without end (see
        :meth:`next_after`)."""
        if dt.tzinfo is None or dt.utcoffset() is None:
            raise ValueError("cron evaluation needs an aware datetime (with tzinfo)")
        tz = zone(timezone)
        if tz is UTC:
            for wall in self._walls(_wall(dt, UTC)):
                yield wall.replace(tzinfo=UTC)
        else:
            dt = dt.astimezone(UTC)
            while True:
                dt = self._next_zoned(dt, tz)
                yield dt

    def _next_zoned(self, dt: datetime, tz: Zone) -> datetime:
        """The next fire after ``dt`` (UTC) for wall times in ``tz``, in UTC."""
        found: datetime | None = None
        for wall in self._walls(_wall(dt, tz)):
            found = next((t for t in _fires_at(wall, tz, self.is_interval) if t > dt), None)
            if found is not None:
                break
        assert found is not None
        if self.is_interval:
            second_pass = self._in_second_pass(dt, tz)
            if second_pass is not None and second_pass < found:
                return second_pass
        return found

    def _in_second_pass(self, dt: datetime, tz: Zone) -> datetime | None:
        """For interval schedules: the first fire after ``dt`` in the second
        pass of a repeated hour beginning within 6 hours after ``dt``. Its wall
        times are earlier than ``dt``'s, so the forward wall search misses it."""
        start = int(dt.timestamp())
        before = _offset(tz, start)
        change = _transition(tz, start, start + 6 * 3600)
        if change is None:
            return None
        after = _offset(tz, change)
        if after >= before:
            return None
        change_utc = datetime.fromtimestamp(change, UTC).replace(tzinfo=None)
        earliest = max(change_utc - timedelta(seconds=1), _wall(dt, UTC))
        wall = next(self._walls(earliest + after))
        if wall >= change_utc + before:
            return None
        return (wall - after).replace(tzinfo=UTC)

    def _walls(self, after: datetime) -> Iterator[datetime]:
        """Naive wall times matching the expression, strictly after
        ``after``, ascending; :class:`CronError` once none is left within
        100 years (the parser refuses what never fires, but ``0 0 * 2 FRI#5``
        fires once in 28 years) or by the end of year 9999."""
        clock = (sorted(self.hours), sorted(self.minutes), sorted(self.seconds))
        floor: tuple[int, ...] | None = (after.hour, after.minute, after.second)
        ordinal = after.toordinal()
        last = min(ordinal + 366 * 100, date.max.toordinal())
        while ordinal <= last:
            day = date.fromordinal(ordinal)
            if day.month not in self.months:  # on to the next month's first day
                ordinal += _month_length(day) - day.day + 1
                floor = None
                continue
            if self._fires_on(day):
                for hour, minute, second in _later(clock, floor):
                    yield datetime(day.year, day.month, day.day, hour, minute, second)
            ordinal += 1
            floor = None
        raise CronError(f"no fire time within 100 years after {after.isoformat()}")

    def _fires_on(self, day: date) -> bool:
        """Whether the expression fires on ``day`` (its month aside): each
        restricted day field's days; when both are restricted, either's."""
        dom, dow = self.days_of_month, self.days_of_week
        if dom is None:
            return dow is None or _dow_matches(dow, day)
        if dow is None:
            return _dom_matches(dom, day)
        return _dom_matches(dom, day) or _dow_matches(dow, day)

    def _render(self, days: Callable[[Values], str]) -> str:
        dom = self.days_of_month
        if isinstance(dom, LastDay):
            dom_text = "L"
        elif isinstance(dom, NearestWeekday):
            dom_text = f"{dom.day}W"
        elif isinstance(dom, DayList):
            items = [_render_runs(dom.days)] if dom.days else []
            items += ["L"] * dom.last + [f"{n}W" for n in sorted(dom.nearest)]
            dom_text = ",".join(items)
        else:
            dom_text = "*" if dom is None else _render_set(dom, _DOM)
        dow = self.days_of_week
        if isinstance(dow, NthWeekday):
            dow_text = _render_nth(dow, days)
        elif isinstance(dow, WeekdaySet):
            items = [days(dow.days)] if dow.days else []
            items += [_render_nth(item, days) for item in
                      sorted(dow.nth, key=nth_order)]
            dow_text = ",".join(items)
        else:
            dow_text = "*" if dow is None else days(dow)
        parts = [_render_set(self.minutes, _MINUTE), _render_set(self.hours, _HOUR), dom_text,
                 _render_set(self.months, _MONTH), dow_text]
        if self.has_seconds:
            parts.insert(0, _render_set(self.seconds, _SECOND))
        return " ".join(parts)


def nth_order(item: NthWeekday) -> tuple[int, int]:
    """Sort key of nth-weekday items: by occurrence (last after 5th), then weekday."""
    return (item.nth or 6, item.weekday)


def _render_nth(item: NthWeekday, days: Callable[[Values], str]) -> str:
    day = days(frozenset({item.weekday}))
    return f"{day}L" if item.nth is None else f"{day}#{item.nth}"


def _dom_matches(spec: Values | LastDay | NearestWeekday | DayList, day: date) -> bool:
    return day.day in spec if isinstance(spec, frozenset) else spec.matches(day)


def _dow_matches(spec: Values | NthWeekday | WeekdaySet, day: date) -> bool:
    return _weekday(day) in spec if isinstance(spec, frozenset) else spec.matches(day)


def _later(fields: tuple[list[int], ...], floor: tuple[int, ...] | None,
           ) -> Iterator[tuple[int, ...]]:
    """The tuples taking one value of each sorted field, ascending; with a
    ``floor`` only those after it (bisected, not filtered: every second of
    a day is 86,400 tuples)."""
    if floor is None:
        yield from itertools.product(*fields)
        return
    head, *rest = fields
    for value in head[bisect.bisect_left(head, floor[0]):]:
        if value > floor[0]:
            for tail in itertools.product(*rest):
                yield (value, *tail)
        elif rest:
            for tail in _later(tuple(rest), floor[1:]):
                yield (value, *tail)


# -- time zones --------------------------------------------------------------


def zone(timezone: str | Zone | None) -> Zone:
    """The tzinfo for an IANA name (UTC and its aliases give
    :data:`datetime.UTC`); a tzinfo is returned as is, ``None`` means UTC.
    ``zoneinfo.ZoneInfoNotFoundError`` for an unknown name."""
    if timezone is None:
        return UTC
    if isinstance(timezone, str):
        if is_utc(timezone):
            return UTC
        from zoneinfo import ZoneInfo  # imported for a zone only: a server's start waits on it

        return ZoneInfo(timezone)
    return timezone


def is_utc(timezone: str) -> bool:
    """Whether the IANA name ``timezone`` always means UTC."""
    return timezone in UTC_NAMES


def _wall(dt: datetime, tz: Zone) -> datetime:
    """``dt``'s naive wall-clock time in ``tz``."""
    return dt.astimezone(tz).replace(tzinfo=None)


def _offset(tz: Zone, timestamp: int) -> timedelta:
    offset = datetime.fromtimestamp(timestamp, tz).utcoffset()
    assert offset is not None
    return offset


def _transition(tz: Zone, low: int, high: int) -> int | None:
    """The first POSIX second in ``(low, high]`` whose UTC offset in ``tz``
    differs from ``low``'s, or None if ``high``'s does not differ."""
    offset = _offset(tz, low)
    if _offset(tz, high) == offset:
        return None
    while high - low > 1:
        middle = (low + high) // 2
        if _offset(tz, middle) == offset:
            low = middle
        else:
            high = middle
    return high


def _fires_at(wall: datetime, tz: Zone, interval: bool) -> tuple[datetime, ...]:
    """The instants (UTC) at which a schedule matching the naive ``wall`` time
    fires in ``tz`` (module docstring): one; none or both (interval) for a
    wall time that does not exist or occurs twice; else the end of the gap or
    the first occurrence."""
    first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    if first == second:
        return (first,)
    early, late = min(first, second), max(first, second)
    if _wall(early, tz) == wall:  # occurs twice
        return (early, late) if interval else (early,)
    if interval:
        return ()
    end = _transition(tz, int(early.timestamp()), int(late.timestamp()))
    assert end is not None
    return (datetime.fromtimestamp(end, UTC),)


# -- parsing -----------------------------------------------------------------


def _parse(text: str) -> CronExpr:
    stripped = text.strip()
    if not stripped:
        raise CronError("empty cron expression")
    if stripped.startswith("@"):
        nickname = stripped.lower()
        if nickname == "@reboot":
            raise CronError("@reboot is not a schedule")
        if nickname not in _NICKNAMES:
            raise CronError(f"unknown nickname {stripped!r} (use one of "
                            f"{', '.join(_NICKNAMES)})")
        parts = _NICKNAMES[nickname].split()
    else:
        parts = stripped.upper().split()
    _refuse_foreign_syntax(parts)
    if len(parts) == 7:
        raise CronError("7-field (year) patterns are not supported (croniter's year range is "
                        "1970-2099, croner's 1-9999; Cloudflare/Vercel have no year field). "
                        "Use 5 fields, or 6 with seconds first.")
    if len(parts) not in (5, 6):
        raise CronError(f"expected 5 fields (minute hour day-of-month month day-of-week) or 6 "
                        f"with seconds first, got {len(parts)}")
    if len(parts) == 5:
        parts.insert(0, "0")
    seconds, minutes, hours = (_parse_set(parts[i], i) for i in (_SECOND, _MINUTE, _HOUR))
    months = _parse_set(parts[_MONTH], _MONTH)
    dom, dow = _parse_days(parts[_DOM], parts[_DOW])
    if dow is None and isinstance(dom, frozenset) and not _fitting_days(dom, months):
        raise CronError("this schedule never fires (e.g. a day that does not exist in the "
                        "given month)")
    return CronExpr(text, seconds, minutes, hours, dom, months, dow)


def _refuse_foreign_syntax(parts: list[str]) -> None:
    """Refusals about the whole expression, checked before any field."""
    for part in parts:
        if "?" in part:
            raise CronError("'?' is not supported: croner 10 treats '?' in a day field as "
                            "'every day' (so '0 0 ? * MON' runs daily), croner 11 as '*'. "
                            "Write '*' instead.")
        if "+" in part:
            raise CronError("the croner '+' (AND) modifier is croner-only; no other engine "
                            "supports it")
        if any(_HASH_RANDOM.match(item) for item in part.split(",")):
            raise CronError("'H'/'R' (croniter hash/random) is not croner syntax")


def _parse_days(dom_token: str, dow_token: str) -> tuple[DomSpec, DowSpec]:
    """Both day fields. Full sets become ``None`` (``*``); when both fields
    are restricted (either matches) and one is full, every day matches."""
    dom_ext = _parse_dom_extension(dom_token)
    dow_ext = _parse_dow_extension(dow_token)
    if (dom_ext is not None and dow_token != "*") or (dow_ext is not None and dom_token != "*"):
        raise CronError("L/W/# may only be used when the other day field is '*' "
                        "(engines combine them differently)")
    dom: DomSpec = dom_ext if dom_ext is not None else (
        None if dom_token == "*" else _parse_set(dom_token, _DOM))
    dow: DowSpec = dow_ext if dow_ext is not None else (
        None if dow_token == "*" else _parse_set(dow_token, _DOW))
    dom_full, dow_full = dom == _full(_DOM), dow == _full(_DOW)
    if dom is not None and dow is not None and (dom_full or dow_full):
        return None, None
    return (None if dom_full else dom), (None if dow_full else dow)


def _full(index: int) -> Values:
    low, high = _BOUNDS[index]
    return frozenset(range(low, high + 1))


def _parse_set(token: str, index: int) -> Values:
    """A plain field: ``*``, values, ranges, steps and lists of them."""
    values: set[int] = set()
    for item in token.split(","):
        if not item:
            raise CronError(f"empty list item in {_LABELS[index]} field {token!r}")
        values.update(_parse_item(item, index))
    if index == _DOW and 7 in values:
        values.discard(7)
        values.add(0)
    return frozenset(values)


def _parse_item(item: str, index: int) -> range:
    label = _LABELS[index]
    low, high = _BOUNDS[index]
    top = 7 if index == _DOW else high
    base, slash, step_text = item.partition("/")
    step = 1
    if slash:
        size = high - low + 1
        if not _NUMBER.match(step_text) or not 1 <= int(step_text) <= size:
            raise CronError(f"{label} field: the step in {item!r} must be a number 1-{size}")
        step = int(step_text)
    if base == "*":
        return range(low, high + 1, step)
    if "-" in base:
        start_text, _, end_text = base.partition("-")
        start = _value(start_text, index, item)
        end = _value(end_text, index, item, range_end=True)
        if start > end:
            split = f"{start}-{top},{low}" + (f"-{end}" if end > low else "")
            raise CronError(f"wrap-around range '{start}-{end}' is rejected by croner (croniter "
                            f"and Cloudflare would accept it). Split it, e.g. '{split}'.")
        return range(start, end + 1, step)
    value = _value(base, index, item)
    if slash:
        raise CronError(f"'{item}': a step needs '*' or a range before '/'; croner rejects "
                        f"'{item}' (sloppyRanges is off). Write '{value}-{top}/{step}'.")
    return range(value, value + 1)


def _value(text: str, index: int, item: str, *, range_end: bool = False) -> int:
    """One number or name of field ``index`` (weekdays 0-7)."""
    low, high = _BOUNDS[index]
    if index == _DOW:
        high = 7
        if range_end and text == "SUN":
            return 7  # as croner: a range ending on SUN ends on Sunday (FRI-SUN)
    names = _MONTH_NAMES if index == _MONTH else _DAY_NAMES if index == _DOW else {}
    if text in names:
        return names[text]
    if not _NUMBER.match(text):
        kind = "a number or a name" if names else "a number"
        raise CronError(f"{_LABELS[index]} field: {text!r} in {item!r} is not {kind}")
    value = int(text)
    if not low <= value <= high:
        raise CronError(f"{_LABELS[index]} value {value} is out of range {low}-{high}")
    return value


def _parse_dom_extension(token: str) -> LastDay | NearestWeekday | DayList | None:
    if "L" not in token and "W" not in token:
        return None
    if "," not in token:
        return _dom_extension_item(token, token)
    days: set[int] = set()
    last, nearest = False, set()
    for item in token.split(","):
        if "L" not in item and "W" not in item:
            if not item:
                raise CronError(f"empty list item in dom field {token!r}")
            days.update(_parse_item(item, _DOM))
            continue
        found = _dom_extension_item(item, token)
        if isinstance(found, LastDay):
            last = True
        else:
            nearest.add(found.day)
    return DayList(frozenset(days), last, frozenset(nearest))


def _dom_extension_item(item: str, token: str) -> LastDay | NearestWeekday:
    """``L`` or ``nW``, alone or as an item of the list ``token``."""
    if item == "L":
        return LastDay()
    match = _NEAREST_WEEKDAY.match(item)
    if match is None:
        if item == token:
            raise CronError(f"unsupported day-of-month '{token}' (only 'L' or 'NW' alone; "
                            "'LW', 'L-n' are not portable)")
        raise CronError(f"unsupported day-of-month item '{item}' in '{token}' (a list may hold "
                        "days, ranges, 'L' and 'NW'; 'LW', 'L-n' are not portable)")
    day = int(match.group(1))
    if 29 <= day <= 31:
        raise CronError(f"'{item}': W is only accepted for days 1-28 (for 29W-31W croner "
                        "skips months without that day, croniter clamps to the month's last "
                        "weekday). Use 'L' or a day 1-28.")
    if not 1 <= day <= 28:
        raise CronError(f"dom value {day} is out of range 1-31")
    return NearestWeekday(day)


def _parse_dow_extension(token: str) -> NthWeekday | WeekdaySet | None:
    if "L" not in token and "#" not in token:
        return None
    days: set[int] = set()
    nth: set[NthWeekday] = set()
    for item in token.split(","):
        match = _NTH_WEEKDAY.match(item)
        if match is None and ("L" in item or "#" in item):
            if "," not in token:
                raise CronError(f"unsupported day-of-week '{token}' (only a single 'D#n', "
                                "'D#L' or 'DL')")
            raise CronError(f"unsupported day-of-week item '{item}' in '{token}' (write "
                            "'D#n', 'D#L' or 'DL', D a weekday, a range or a step)")
        if match is None:
            if not item:
                raise CronError(f"empty list item in dow field {token!r}")
            days.update(value % 7 for value in _parse_item(item, _DOW))
            continue
        count = match.group("nth")
        if count is not None and count != "L" and not 1 <= int(count) <= 5:
            raise CronError(f"'{item}': the occurrence after '#' must be 1-5 or L")
        which = None if count is None or count == "L" else int(count)
        nth.update(NthWeekday(value % 7, which) for value in _parse_item(match.group("base"),
                                                                          _DOW))
    if not days and len(nth) == 1:
        return next(iter(nth))
    return WeekdaySet(frozenset(days), frozenset(nth))


def _fitting_days(days: Values, months: Values) -> Values:
    """The days of ``days`` that exist in at least one of ``months``."""
    longest = max(_MONTH_DAYS[m] for m in months)
    return frozenset(d for d in days if d <= longest)


def _is_plain(spec: DomSpec | DowSpec) -> bool:
    return spec is None or isinstance(spec, frozenset)


def _meaning_key(expr: CronExpr) -> tuple[object, ...]:
    """Equal for expressions that fire at the same instants: day numbers no
    chosen month has are dropped, then months without a chosen day; ``L`` in
    months of one length (not February) is that day; days covering whole
    months are ``*``."""
    months, dom, dow = expr.months, expr.days_of_month, expr.days_of_week
    lengths = {_MONTH_DAYS[m] for m in months}
    if isinstance(dom, LastDay) and len(lengths) == 1 and 2 not in months:
        dom = frozenset(lengths)
    if isinstance(dom, frozenset):
        dom = _fitting_days(dom, months)
        if dow is None:
            months = frozenset(m for m in months if min(dom) <= _MONTH_DAYS[m])
            if dom >= frozenset(range(1, max(_MONTH_DAYS[m] for m in months) + 1)):
                dom = None
        elif not dom:
            dom = None
    return (expr.seconds, expr.minutes, expr.hours, months, dom, dow)


# -- rendering of value sets ----------------------------------------------------


def _runs(values: Values) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for value in sorted(values):
        if runs and runs[-1][1] == value - 1:
            runs[-1] = (runs[-1][0], value)
        else:
            runs.append((value, value))
    return runs


def _render_runs(values: Values, names: tuple[str, ...] | None = None) -> str:
    def show(value: int) -> str:
        return names[value] if names else str(value)

    return ",".join(show(a) if a == b else f"{show(a)}-{show(b)}" for a, b in _runs(values))


def _render_set(values: Values, index: int) -> str:
    """``*``, ``*/S``, ``A-B/S`` (3+ evenly spaced values) or runs and values."""
    low, high = _BOUNDS[index]
    if values == _full(index):
        return "*"
    ordered = sorted(values)
    step = ordered[1] - ordered[0] if len(ordered) > 2 else 0
    if step > 1 and ordered == list(range(ordered[0], ordered[-1] + 1, step)):
        if ordered[0] == low and ordered[-1] + step > high:
            return f"*/{step}"
        return f"{ordered[0]}-{ordered[-1]}/{step}"
    return _render_runs(values)


def _render_day_canonical(values: Values) -> str:
    return _render_set(values, _DOW)


def _render_day_digits(values: Values) -> str:
    return _render_runs(values)


def _render_day_names(values: Values) -> str:
    return _render_runs(values, _DAY_LABELS)
