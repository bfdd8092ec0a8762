"""A checker for Kubernetes CronJob schedules, as the API server parses them.

``kubernetes-validate`` checks manifests against the JSON schemas, which
say only that ``schedule`` is a string; the API server parses it with
``cron.ParseStandard`` from ``github.com/robfig/cron/v3``
(``pkg/apis/batch/validation/validation.go``) and, since 1.29, refuses a
schedule containing ``TZ`` ("use timeZone field instead"). No Go runs here,
so :func:`check_kubernetes_schedule` implements what that parser accepts
(read from its source, ``parser.go``/``spec.go``):

- five fields separated by white space: minute 0-59, hour 0-23,
  day-of-month 1-31, month 1-12 or ``jan``-``dec``, day-of-week 0-6 or
  ``sun``-``sat`` (names case-insensitive; ``7`` is out of range);
- each field a comma list of ``*``, ``?`` (the same as ``*``), ``N`` or
  ``N-M``, each optionally ``/step`` (``N/step`` runs to the field's end);
  no ``L``, ``W`` or ``#``;
- or a descriptor: ``@yearly``, ``@annually``, ``@monthly``, ``@weekly``,
  ``@daily``, ``@midnight``, ``@hourly``.
"""

from __future__ import annotations

from taskpack.cron import CronError

_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day-of-month", 1, 31, ()),
    ("month", 1, 12, ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct",
                      "nov", "dec")),
    ("day-of-week", 0, 6, ("sun", "mon", "tue", "wed", "thu", "fri", "sat")),
)
DESCRIPTORS = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight",
                         "@hourly"})


def check_kubernetes_schedule(text: str) -> None:
    """``None`` when the API server accepts ``text`` as a CronJob schedule,
    else :class:`CronError` with the reason."""
    if "TZ" in text:
        raise CronError("cannot use TZ or CRON_TZ in schedule, use timeZone field instead")
    if text.startswith("@"):
        if text not in DESCRIPTORS:
            raise CronError(f"unrecognized descriptor: {text}")
        return
    fields = text.split()
    if len(fields) != 5:
        raise CronError(f"expected exactly 5 fields, found {len(fields)}: {text!r}")
    for index, field in enumerate(fields):
        for item in field.split(","):
            _check_range(index, item)


def _check_range(index: int, item: str) -> None:
    name = _FIELDS[index][0]
    base, slash, step = item.partition("/")
    if slash and (not step.isdigit() or int(step) == 0):
        raise CronError(f"{name}: step of range should be a positive number: {item!r}")
    if base in ("*", "?"):
        return
    parts = base.split("-")
    if len(parts) > 2:
        raise CronError(f"{name}: too many hyphens: {item!r}")
    start = _value(index, parts[0])
    end = _value(index, parts[1]) if len(parts) == 2 else start
    if start > end:
        raise CronError(f"{name}: beginning of range ({start}) beyond end of range ({end}): "
                        f"{item!r}")


def _value(index: int, text: str) -> int:
    name, low, high, names = _FIELDS[index]
    if text.lower() in names:
        return low + names.index(text.lower())
    if not text.isdigit():
        raise CronError(f"{name}: failed to parse int from {text!r}")
    value = int(text)
    if value < low:
        raise CronError(f"{name}: beginning of range ({value}) below minimum ({low})")
    if value > high:
        raise CronError(f"{name}: end of range ({value}) above maximum ({high})")
    return value
