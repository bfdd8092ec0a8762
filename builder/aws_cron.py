"""A checker for EventBridge Scheduler cron expressions, as AWS documents them.

Neither cfn-lint line checks the ``ScheduleExpression`` of an
``AWS::Scheduler::Schedule`` (its rule E3027 covers ``AWS::Events::Rule``
only), and nothing offline evaluates one, so taskpack checks what it emits
itself: :func:`check_aws_cron` accepts exactly the syntax of the
"Cron expressions reference" of the EventBridge user guide
(https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-cron-expressions.html),
which the Scheduler shares:

=============  ===================  ===================
field          values               wildcards
=============  ===================  ===================
minutes        0-59                 ``, - * /``
hours          0-23                 ``, - * /``
day-of-month   1-31                 ``, - * ? / L W``
month          1-12 or JAN-DEC      ``, - * /``
day-of-week    1-7 or SUN-SAT       ``, - * ? L #``
year           1970-2199            ``, - * /``
=============  ===================  ===================

and its limitations: six fields inside ``cron(...)``; exactly one of the
day fields is ``?``; ``#`` only once in day-of-week (``3#1,6#3`` is
invalid); no rate faster than a minute (there is no seconds field).
Increments are written ``start/step`` (the documented form, ``1/10``);
``L`` and ``W`` follow Quartz, whose dialect AWS's is (``L``, ``15W`` in
day-of-month; ``L``, ``6L`` = last Friday in day-of-week). Names are
case-insensitive.
"""

from __future__ import annotations

import re

from taskpack.cron import CronError

_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_WEEKDAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")

# name, lowest, highest, names (index 0 = lowest), extra wildcards
_FIELDS: tuple[tuple[str, int, int, tuple[str, ...], str], ...] = (
    ("minutes", 0, 59, (), ""),
    ("hours", 0, 23, (), ""),
    ("day-of-month", 1, 31, (), "?LW"),
    ("month", 1, 12, _MONTHS, ""),
    ("day-of-week", 1, 7, _WEEKDAYS, "?L#"),
    ("year", 1970, 2199, (), ""),
)
_DOM, _DOW = 2, 4
_WRAPPED = re.compile(r"^cron\((.*)\)$", re.DOTALL)
_NEAREST = re.compile(r"^(\d+)W$")
_LAST_OF = re.compile(r"^(\w+)L$")
_NTH = re.compile(r"^(\w+)#(\d+)$")
MAX_LENGTH = 256
"""``ScheduleExpression`` is 1-256 characters (Scheduler API reference)."""


def check_aws_cron(text: str) -> None:
    """``None`` when ``text`` is a valid Scheduler cron expression, else
    :class:`CronError` naming the field and the rule broken."""
    if not 1 <= len(text) <= MAX_LENGTH:
        raise CronError(f"a ScheduleExpression is 1-{MAX_LENGTH} characters, got {len(text)}")
    match = _WRAPPED.match(text)
    if match is None:
        raise CronError(f"{text!r} is not written cron(...)")
    fields = match.group(1).split(" ")
    if len(fields) != 6 or any(not part for part in fields):
        raise CronError(f"{text!r}: expected six fields separated by single spaces "
                        "(minutes hours day-of-month month day-of-week year)")
    for index, token in enumerate(fields):
        _check_field(index, token.upper())
    dom, dow = fields[_DOM], fields[_DOW]
    if (dom == "?") == (dow == "?"):
        raise CronError(f"{text!r}: exactly one of day-of-month and day-of-week must be '?'")


def _check_field(index: int, token: str) -> None:
    name, *_, extra = _FIELDS[index]
    if token == "?":
        if "?" not in extra:
            raise CronError(f"{name}: '?' is only allowed in day-of-month and day-of-week")
        return
    items = token.split(",")
    if "#" in token:
        if "#" not in extra:
            raise CronError(f"{name}: '#' is only allowed in day-of-week")
        if len(items) > 1:
            raise CronError(f"{name}: with '#' the field holds one expression only ({token!r})")
    for item in items:
        if not item:
            raise CronError(f"{name}: empty list item in {token!r}")
        _check_item(index, item)


def _check_item(index: int, item: str) -> None:
    name, low, high, _, extra = _FIELDS[index]
    if "L" in extra and item == "L":
        return
    if "W" in extra and (nearest := _NEAREST.match(item)):
        _number(index, nearest.group(1), item)
        return
    if "L" in extra and index == _DOW and (last := _LAST_OF.match(item)):
        _number(index, last.group(1), item)
        return
    if "#" in extra and (nth := _NTH.match(item)):
        _number(index, nth.group(1), item)
        if not 1 <= int(nth.group(2)) <= 5:
            raise CronError(f"{name}: the occurrence after '#' must be 1-5 in {item!r}")
        return
    base, slash, step = item.partition("/")
    if slash:
        if not step.isdigit() or not 1 <= int(step) <= high - low + 1:
            raise CronError(f"{name}: the increment in {item!r} must be 1-{high - low + 1}")
        if base == "*":
            raise CronError(f"{name}: write increments as start/step ({low}/{step}), the form "
                            f"AWS documents, not {item!r}")
    if base == "*":
        return
    start, dash, end = base.partition("-")
    first = _number(index, start, item)
    if dash and _number(index, end, item) < first:
        raise CronError(f"{name}: range {base!r} runs backwards")


def _number(index: int, text: str, item: str) -> int:
    name, low, high, names, _ = _FIELDS[index]
    if text in names:
        return low + names.index(text)
    if not text.isdigit():
        raise CronError(f"{name}: {text!r} in {item!r} is not a number"
                        + (" or a name" if names else ""))
    value = int(text)
    if not low <= value <= high:
        raise CronError(f"{name}: {value} is out of range {low}-{high}")
    return value
