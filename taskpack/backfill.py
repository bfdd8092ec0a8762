"""What happens to scheduled fires nobody claimed in time (DESIGN §11).

A fire is *missed* when no scheduler could claim it when it came due: no
process was running (found at start, between the schedule's last claimed
fire and now), the store was unavailable, the wall clock jumped over it, or
the scheduler's loop was late by more than the misfire grace. Backfill is
opt-in per task (``[tasks."x"] backfill = "2h"``, ``define_task(backfill=…)``):
a missed fire inside a task's window runs once, late, with its own
``scheduledTime``, oldest first; without a window it is logged as missed
and never run. A schedule never claimed before (a new one) has nothing to
backfill.

:func:`plan_missed` decides, for one schedule, from plain numbers; the
scheduler carries the plan out with claims, so backfill is exactly-once
across hosts like any other fire.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .cron import CronExpr, Zone

COUNT_LIMIT = 10_000
"""Missed fires counted one by one for the log; beyond, the count is a floor."""


@dataclass
class MissedPlan:
    """The fate of a schedule's missed fires.

    ``run`` lists ``(fire_ms, tasks)`` to claim, oldest first, each with the
    tasks whose window covers it. ``skipped`` maps each task to the number
    of missed fires it does not run; ``first_ms``/``last_ms`` bound the
    missed fires. ``mark`` is the newest missed fire that no host will ever
    run (older than every window and than the misfire grace): it is claimed
    without jobs, so a later start does not report it again.
    """

    run: list[tuple[int, tuple[str, ...]]] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    first_ms: int | None = None
    last_ms: int | None = None
    count: int = 0
    mark: int | None = None


def to_ms(moment: datetime) -> int:
    """A fire instant as epoch milliseconds (the claim key and ``scheduledTime``)."""
    return round(moment.timestamp() * 1000)


def fires_between(expr: CronExpr, tz: Zone, after_ms: int, until_ms: int,
                  limit: int | None = None) -> Iterator[int]:
    """Fire instants (epoch ms) in ``(after_ms, until_ms]``, ascending; at
    most ``limit`` of them."""
    start = datetime.fromtimestamp(after_ms / 1000, UTC)
    for count, moment in enumerate(expr.iter_after(start, tz)):
        fire = to_ms(moment)
        if fire > until_ms or (limit is not None and count >= limit):
            return
        yield fire


def plan_missed(fires: Sequence[int], windows: Mapping[str, float | None], now_ms: int,
                grace: float, older: int = 0) -> MissedPlan:
    """Plan the missed ``fires`` (epoch ms, ascending) of one schedule whose
    tasks have the backfill ``windows`` (seconds, None: no backfill) at
    ``now_ms``. ``older`` counts missed fires before ``fires`` that no
    window reaches (only logged). ``grace`` is the scheduler's misfire grace
    in seconds."""
    horizon = max([grace, *(w for w in windows.values() if w is not None)])
    run: list[tuple[int, tuple[str, ...]]] = []
    skipped = {name: older for name in windows}
    mark: int | None = None
    for fire in fires:
        age = (now_ms - fire) / 1000
        tasks = tuple(name for name, window in windows.items()
                      if window is not None and age <= window)
        if tasks:
            run.append((fire, tasks))
        elif age > horizon:
            mark = fire
        for name in windows:
            if name not in tasks:
                skipped[name] += 1
    return MissedPlan(run=run, skipped={k: v for k, v in skipped.items() if v},
                      first_ms=fires[0] if fires else None,
                      last_ms=fires[-1] if fires else None,
                      count=older + len(fires), mark=mark)


def describe(ms: int | None) -> str:
    """An instant for log lines (UTC, ISO 8601, seconds)."""
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
