"""The in-process cron scheduler of the server presets (asyncio).

One timer per distinct schedule (schedules equal in meaning share one, so a
task listed under ``0 12 * * 1-5`` and ``0 12 * * MON-FRI`` runs once). Each
timer sleeps until the next fire time computed from the wall clock, never
from the previous sleep, so lateness does not accumulate. Long sleeps are
cut at :data:`RECHECK_SECONDS` to notice a change of the system clock:
after a jump forwards the tick that was due fires once (the ticks jumped
over are not replayed); after a jump backwards no tick fires twice.

A fire runs the schedule's tasks with :func:`taskpack.fire.run_fire`, as
the platform entry points do: in parallel, ``payload={"scheduledTime":
<fire time, epoch ms>}``, one log line per run, a failure stopping nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from .cron import CronError, CronExpr, zone
from .fire import Outcome, run_fire
from .registry import Registry

__all__ = ["RECHECK_SECONDS", "Scheduler"]

RECHECK_SECONDS = 30.0
"""The longest single sleep: how soon a change of the wall clock is noticed."""


class _Timer:
    """One distinct schedule: its expression and (task, cron as written) pairs."""

    def __init__(self, expr: CronExpr) -> None:
        self.expr = expr
        self.runs: dict[str, str] = {}


class Scheduler:
    """Fires ``registry.schedules`` in the running event loop.

    ``timezone`` (IANA name) is the zone cron wall times are read in;
    ``None`` takes the registry's. ``clock`` returns the wall-clock time in
    POSIX seconds (``time.time``, the default); ``logger`` defaults to
    ``logging.getLogger("taskpack.scheduler")``.
    """

    def __init__(
        self,
        registry: Registry,
        *,
        timezone: str | None = None,
        logger: logging.Logger | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = registry
        self.timezone = zone(timezone if timezone is not None else registry.timezone)
        self.logger = logger or logging.getLogger("taskpack.scheduler")
        self.clock = clock
        timers: dict[CronExpr, _Timer] = {}
        for schedule in registry.schedules:
            expr = CronExpr.parse(schedule.cron)
            timer = timers.setdefault(expr, _Timer(expr))
            for name in schedule.tasks:
                timer.runs.setdefault(name, schedule.cron)
        self._timers = tuple(timers.values())
        self._loops: list[asyncio.Task[None]] = []
        self._runs: set[asyncio.Task[dict[str, Outcome]]] = set()
        self._started = False

    def start(self) -> None:
        """Start one timer per schedule; needs a running event loop."""
        loop = asyncio.get_running_loop()
        if self._started:
            raise RuntimeError("the scheduler was already started")
        self._started = True
        self._loops = [loop.create_task(self._timer(timer), name=f"taskpack cron {timer.expr}")
                       for timer in self._timers]

    async def stop(self, grace_seconds: float) -> None:
        """Stop firing; wait up to ``grace_seconds`` for running tasks, then
        cancel those still running."""
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        self._loops = []
        running = set(self._runs)
        if running:
            _, pending = await asyncio.wait(running, timeout=max(grace_seconds, 0.0))
            for run in pending:
                run.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    async def _timer(self, timer: _Timer) -> None:
        try:
            due = timer.expr.next_after(self._now(), self.timezone)
            while True:
                wait = (due - self._now()).total_seconds()
                if wait > 0:
                    await asyncio.sleep(min(wait, RECHECK_SECONDS))
                    continue
                self._fire(timer, due)
                await asyncio.sleep(0)  # let the runs start before computing the next tick
                due = timer.expr.next_after(max(due, self._now()), self.timezone)
        except CronError as exc:  # past croniter's last year (2099)
            self.logger.error("cron=%r stops firing: %s", timer.expr.source, exc)

    def _fire(self, timer: _Timer, due: datetime) -> None:
        fire = run_fire(self.registry, timer.runs, int(due.timestamp() * 1000),
                        logger=self.logger)
        task = asyncio.get_running_loop().create_task(fire)
        self._runs.add(task)
        task.add_done_callback(self._runs.discard)
