"""The in-process cron scheduler of the server presets and ``taskpack dev``.

One timer per distinct schedule (schedules equal in meaning share one, so a
task listed under ``0 12 * * 1-5`` and ``0 12 * * MON-FRI`` runs once).
Each timer computes its fire instants from the wall clock (never from the
previous sleep, so lateness does not accumulate) and, at each instant,
*claims* the fire before anything runs.

**Claims (DESIGN §11).** With a store, a fire is claimed in the store:
(schedule id, fire instant) can be won by exactly one caller across every
process and host, and the winner's claim carries the fire's tasks as jobs
(one per task, ``payload={"scheduledTime": <fire instant, epoch ms>}``,
trigger ``schedule:<cron>``) that the queue's workers run, so a host dying
mid-run has its job re-run by another after the lease. Every process runs
the same scheduler; there is no leader. Without a store (a library use of
the runtime), the claims are this process's memory and the fire runs here
with :func:`taskpack.fire.run_fire`, as the platform entry points do.

**Missed fires** follow the backfill rule of :mod:`taskpack.backfill`: at
start, the fires between the schedule's last claimed fire and now were
missed while no scheduler ran; fires whose claim failed because the store
was unavailable are missed once it is back; fires the wall clock jumped
over, or that the loop reached more than :data:`MISFIRE_GRACE` seconds
late, are missed too. A fire the loop reaches late but within the grace
(a busy machine) is claimed as usual.

**Clock steps.** Sleeps are cut at :data:`RECHECK_SECONDS`; after each, a
:class:`~taskpack.clock.StepWatch` compares the wall clock with the
monotonic one. After a step backwards the timer re-plans from the new wall
time (it does not sleep towards an instant computed before the step); the
instants it then reaches were perhaps claimed already (by this host before
the step, or by another) and claims refuse them, so nothing fires twice.
After a step forwards, the instants jumped over are missed fires.

**Store down.** A claim or a read that fails with
:class:`~taskpack.store.StoreUnavailable` is retried with exponential
backoff (up to :data:`MAX_BACKOFF`); the state change is logged once each
way (unavailable, available again) and shown in :meth:`Scheduler.status`.
Any other error inside a timer is logged with its traceback and the timer
starts again after a backoff: a scheduler never dies silently.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from .backfill import COUNT_LIMIT, describe, fires_between, plan_missed, to_ms
from .clock import STEP_TOLERANCE, StepWatch, wall_clock
from .cron import CronError, CronExpr, zone
from .execution import host_name
from .fire import Outcome, run_fire
from .options import parse_duration
from .registry import Registry
from .store import FireClaim, NewJob, Store, StoreUnavailable, schedule_id

__all__ = ["MAX_BACKOFF", "MISFIRE_GRACE", "RECHECK_SECONDS", "Scheduler"]

RECHECK_SECONDS = 30.0
"""The longest single sleep: how soon a step of the wall clock is noticed."""

MISFIRE_GRACE = 60.0
"""Seconds a running scheduler may reach a fire late (a busy machine) and
still claim it as on time; later, it is a missed fire."""

MIN_BACKOFF = 0.5
MAX_BACKOFF = 5.0
"""Retry delays while the store is unavailable (doubling from the first)."""

T = TypeVar("T")


class _Timer:
    """One distinct schedule: its expression, (task, cron as written) pairs,
    its claim id, and the fires that came due while the store was down."""

    def __init__(self, expr: CronExpr) -> None:
        self.expr = expr
        self.runs: dict[str, str] = {}
        self.id = ""
        self.outage: list[int] = []
        self.windows: dict[str, float | None] | None = None


class Claims(Protocol):
    """Where fires are claimed: the store, or this process's memory."""

    async def last_fire(self, timer: _Timer) -> int | None: ...

    async def claim(self, timer: _Timer, fire_ms: int, tasks: tuple[str, ...]) -> bool: ...


class Scheduler:
    """Fires ``registry.schedules`` in the running event loop.

    ``timezone`` (IANA name) is the zone cron wall times are read in;
    ``None`` takes the registry's. ``clock`` returns the wall-clock time in
    POSIX seconds (:func:`taskpack.clock.wall_clock`, the default); ``logger``
    defaults to ``logging.getLogger("taskpack.scheduler")``. ``store``
    (opened by the caller) makes fires claims with jobs; ``host`` names this
    process in its claims (default ``hostname:pid``, as runs name it).
    ``since`` (POSIX seconds, not after now) is when fires start to count
    as due, for a scheduler started a moment after its process was ready (a
    server starts it once it serves): the fires due in between are claimed
    as on time, not lost. Default: when each timer starts.
    """

    def __init__(
        self,
        registry: Registry,
        *,
        timezone: str | None = None,
        logger: logging.Logger | None = None,
        clock: Callable[[], float] = wall_clock,
        store: Store | None = None,
        host: str | None = None,
        misfire_grace: float = MISFIRE_GRACE,
        since: float | None = None,
    ) -> None:
        self.registry = registry
        self.timezone_name = timezone if timezone is not None else registry.timezone
        self.timezone = zone(self.timezone_name)
        self.logger = logger or logging.getLogger("taskpack.scheduler")
        self.clock = clock
        self.store = store
        self.host = host or host_name()
        self.misfire_grace = misfire_grace
        self.since = since
        timers: dict[CronExpr, _Timer] = {}
        for schedule in registry.schedules:
            expr = CronExpr.parse(schedule.cron)
            timer = timers.setdefault(expr, _Timer(expr))
            for name in schedule.tasks:
                timer.runs.setdefault(name, schedule.cron)
        for timer in timers.values():
            timer.id = schedule_id(timer.expr.canonical, self.timezone_name, list(timer.runs))
        self._timers = tuple(timers.values())
        self._claims: Claims = (_StoreClaims(self, store) if store is not None
                                else _LocalClaims(self))
        self._loops: list[asyncio.Task[None]] = []
        self._runs: set[asyncio.Task[dict[str, Outcome]]] = set()
        self._started = False
        self._store_error: str | None = None
        self._down_since: float | None = None
        self._backoff = MIN_BACKOFF
        self.missed = 0
        """Fires missed and not run (for ``/_health``)."""

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> None:
        """Start one timer per schedule; needs a running event loop."""
        loop = asyncio.get_running_loop()
        if self._started:
            raise RuntimeError("the scheduler was already started")
        self._started = True
        self._loops = [loop.create_task(self._supervise(timer), name=f"taskpack cron {timer.expr}")
                       for timer in self._timers]

    async def stop(self, grace_seconds: float) -> None:
        """Stop firing; wait up to ``grace_seconds`` for fires running in
        this process (without a store), then cancel those still running."""
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

    def status(self) -> dict[str, Any]:
        """The scheduler's state for ``/_health``: how many schedules, where
        fires are claimed, whether the store answers (with the last error
        while it does not) and how many missed fires were not run."""
        return {
            "schedules": len(self._timers),
            "claims": "store" if self.store is not None else "local",
            "store": "unavailable" if self._store_error is not None else "ok",
            "error": self._store_error,
            "missedFires": self.missed,
        }

    # -- the timers --------------------------------------------------------

    async def _supervise(self, timer: _Timer) -> None:
        """Run one timer; an unexpected error is logged and the timer starts
        again after a backoff (its missed fires follow the backfill rule)."""
        delay = MIN_BACKOFF
        since = self.since
        while True:
            try:
                await self._timer(timer, since)
                return
            except CronError as exc:  # no fire left (within 100 years, or before 10000)
                self.logger.error("cron=%r stops firing: %s", timer.expr.source, exc)
                return
            except Exception:
                self.logger.exception("cron=%r: scheduler error; restarting this schedule in "
                                      "%.1fs", timer.expr.source, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF)
            since = None  # a restart's missed fires follow the backfill rule

    async def _timer(self, timer: _Timer, since: float | None) -> None:
        watch = StepWatch(self.clock)
        last = await self._retrying(lambda: self._claims.last_fire(timer))
        now = self.clock()
        begin = now if since is None else min(since, now)
        # With a store, fires of the last second are left to the loop, as on
        # time: another host may be claiming them right now, with all their
        # tasks (a missed fire is claimed with its backfilling tasks only).
        cursor = begin - (STEP_TOLERANCE if self.store is not None else 0.0)
        if last is not None and last < to_ms(_at(cursor)):
            await self._missed(timer, last, to_ms(_at(cursor)), "while no scheduler ran")
        caught_up = time.monotonic() - (now - begin)  # fires due since ``begin`` are on time
        while True:
            due = timer.expr.next_after(_at(cursor), self.timezone)
            while True:
                now = self.clock()
                step = watch.check()
                if step is not None and step.seconds < 0:
                    self.logger.warning(
                        "cron=%r: the wall clock stepped back %.1fs; re-planning from %s "
                        "(instants already claimed are not run again)", timer.expr.source,
                        -step.seconds, describe(to_ms(_at(now))))
                    cursor = now
                    due = timer.expr.next_after(_at(cursor), self.timezone)
                elif step is not None:
                    self.logger.warning("cron=%r: the wall clock stepped forward %.1fs",
                                        timer.expr.source, step.seconds)
                wait = (due - _at(now)).total_seconds()
                if timer.outage and self._store_error is None:
                    await self._recover(timer, now)
                if wait <= 0:
                    break
                if timer.outage:
                    wait = min(wait, self._backoff)
                await asyncio.sleep(min(wait, RECHECK_SECONDS))
                if timer.outage:
                    await self._probe(timer)
            now = self.clock()
            allowance = min(self.misfire_grace, time.monotonic() - caught_up + STEP_TOLERANCE)
            now_ms = to_ms(_at(now))
            due_ms = to_ms(due)
            cutoff_ms = now_ms - round(allowance * 1000)  # older fires are late
            if due_ms < cutoff_ms:
                await self._missed(timer, due_ms - 1, cutoff_ms - 1, "as the scheduler was "
                                   "late or the wall clock jumped forward")
                on_time = list(fires_between(timer.expr, self.timezone, cutoff_ms - 1, now_ms))
            else:
                on_time = [due_ms, *fires_between(timer.expr, self.timezone, due_ms, now_ms)]
            for fire in on_time:
                if timer.outage:  # the store is not back yet: no claim to wait on
                    timer.outage.append(fire)
                else:
                    await self._fire(timer, fire)
            cursor = now
            caught_up = time.monotonic()

    async def _fire(self, timer: _Timer, fire_ms: int) -> None:
        """Claim one on-time fire with all its tasks. If the store is down,
        the fire waits for it in ``timer.outage``, and so do the fires due
        until a probe finds the store back (each would otherwise wait out
        the store's connection timeout, and be claimed late)."""
        try:
            await self._claims.claim(timer, fire_ms, tuple(timer.runs))
        except StoreUnavailable as exc:
            self._store_down(exc)
            timer.outage.append(fire_ms)
            return
        self._store_up()

    async def _probe(self, timer: _Timer) -> None:
        """While fires wait for the store: ask it again (a cheap read)."""
        try:
            await self._claims.last_fire(timer)
        except StoreUnavailable as exc:
            self._store_down(exc)
            return
        self._store_up()

    async def _recover(self, timer: _Timer, now: float) -> None:
        """The store is back: the fires due while it was down follow the
        backfill rule."""
        outage, timer.outage = timer.outage, []
        await self._missed_fires(timer, outage, to_ms(_at(now)),
                                 "while the store was unavailable")

    async def _missed(self, timer: _Timer, last_ms: int, now_ms: int, reason: str) -> None:
        """The fires in ``(last_ms, now_ms]`` were missed: plan them (only
        the ones some window or the grace reaches are listed one by one)."""
        windows = self._windows(timer)
        horizon = max([self.misfire_grace, *(w for w in windows.values() if w is not None)])
        start = max(last_ms, now_ms - round(horizon * 1000))
        older = sum(1 for _ in fires_between(timer.expr, self.timezone, last_ms, start,
                                             COUNT_LIMIT))
        fires = list(fires_between(timer.expr, self.timezone, start, now_ms))
        await self._missed_fires(timer, fires, now_ms, reason, older=older)

    async def _missed_fires(self, timer: _Timer, fires: list[int], now_ms: int, reason: str,
                            older: int = 0) -> None:
        if not fires and not older:
            return
        plan = plan_missed(fires, self._windows(timer), now_ms, self.misfire_grace, older)
        source = timer.expr.source
        if plan.run:
            self.logger.warning("cron=%r: %d missed fire(s) %s run now (backfill), oldest "
                                "first: %s .. %s", source, len(plan.run), reason,
                                describe(plan.run[0][0]), describe(plan.run[-1][0]))
        if plan.skipped:
            counts = ", ".join(f"{name} {count}{'+' if older >= COUNT_LIMIT else ''}"
                               for name, count in plan.skipped.items())
            self.logger.warning("cron=%r: fires missed %s, not run (no backfill window "
                                "reaches them): %s .. %s; per task: %s", source, reason,
                                describe(plan.first_ms), describe(plan.last_ms), counts)
            self.missed += max(plan.skipped.values())
        for index, (fire, tasks) in enumerate(plan.run):
            try:
                await self._claims.claim(timer, fire, tasks)
            except StoreUnavailable as exc:
                self._store_down(exc)
                timer.outage.extend(f for f, _ in plan.run[index:])
                return
            self._store_up()
        if plan.mark is not None:
            try:
                await self._claims.claim(timer, plan.mark, ())
            except StoreUnavailable as exc:
                self._store_down(exc)

    def _windows(self, timer: _Timer) -> dict[str, float | None]:
        """Each task's backfill window in seconds (None: no backfill), from
        its options (config over ``define_task``), loading it if needed."""
        if timer.windows is None:
            windows: dict[str, float | None] = {}
            for name in timer.runs:
                try:
                    windows[name] = self.registry.runner(name).options.backfill
                except Exception as exc:  # the task cannot load: its config still counts
                    raw = self.registry.entries[name].options.get("backfill") \
                        if name in self.registry.entries else None
                    windows[name] = parse_duration(raw) if raw is not None else None
                    self.logger.warning("cron=%r: task %s: cannot read its backfill option "
                                        "(%s); using the config's", timer.expr.source, name, exc)
            timer.windows = windows
        return timer.windows

    # -- the store's state ---------------------------------------------------

    async def _retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        """``call()`` until the store answers, with backoff."""
        while True:
            try:
                value = await call()
            except StoreUnavailable as exc:
                self._store_down(exc)
                await asyncio.sleep(self._backoff)
                continue
            self._store_up()
            return value

    def _store_down(self, exc: Exception) -> None:
        if self._store_error is None:
            self._down_since = time.monotonic()
            self.logger.error("store unavailable: %s; fires wait for it (retrying with "
                              "backoff up to %.0fs)", exc, MAX_BACKOFF)
        else:
            self._backoff = min(self._backoff * 2, MAX_BACKOFF)
        self._store_error = str(exc) or type(exc).__name__

    def _store_up(self) -> None:
        if self._store_error is not None:
            down = time.monotonic() - (self._down_since or time.monotonic())
            self.logger.warning("store available again after %.1fs; scheduling resumes", down)
        self._store_error = None
        self._backoff = MIN_BACKOFF

    # -- running fires here (no store) ----------------------------------------

    def _run_here(self, timer: _Timer, fire_ms: int, tasks: tuple[str, ...]) -> None:
        runs = {name: timer.runs[name] for name in tasks}
        fire = run_fire(self.registry, runs, fire_ms, logger=self.logger)
        task = asyncio.get_running_loop().create_task(fire)
        self._runs.add(task)
        task.add_done_callback(self._runs.discard)

    def _job(self, timer: _Timer, name: str, fire_ms: int) -> NewJob:
        """The job one task of a won fire becomes: due at the fire instant
        (so backfilled fires run oldest first), or now if this process's
        scheduler clock is ahead of the time workers go by (the test hook)."""
        try:
            attempts = self.registry.runner(name).options.retry.max_attempts
        except Exception:  # a task that cannot load fails in the worker, visibly
            attempts = 1
        return NewJob(task=name, payload={"scheduledTime": fire_ms},
                      run_at=min(fire_ms / 1000, time.time()), max_attempts=attempts,
                      trigger=f"schedule:{timer.runs[name]}")


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


class _StoreClaims:
    """Fires claimed in the store; the winner's jobs are stored with the claim."""

    def __init__(self, scheduler: Scheduler, store: Store) -> None:
        self.scheduler = scheduler
        self.store = store

    async def last_fire(self, timer: _Timer) -> int | None:
        return await self.store.last_fire(timer.id)

    async def claim(self, timer: _Timer, fire_ms: int, tasks: tuple[str, ...]) -> bool:
        jobs = tuple(self.scheduler._job(timer, name, fire_ms) for name in tasks)
        won = await self.store.claim_fire(FireClaim(timer.id, fire_ms, jobs),
                                          self.scheduler.host)
        if won:
            self.scheduler.logger.debug("%s cron=%r claimed: %d job(s)", describe(fire_ms),
                                        timer.expr.source, len(jobs))
        return won


class _LocalClaims:
    """Without a store: claims are this process's memory (recent instants,
    so a step of the clock backwards does not fire an instant twice), and a
    won fire runs here."""

    KEEP = 100_000

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self.claimed: dict[tuple[str, int], None] = {}

    async def last_fire(self, timer: _Timer) -> int | None:
        return None

    async def claim(self, timer: _Timer, fire_ms: int, tasks: tuple[str, ...]) -> bool:
        key = (timer.id, fire_ms)
        if key in self.claimed:
            return False
        self.claimed[key] = None
        if len(self.claimed) > self.KEEP:
            del self.claimed[next(iter(self.claimed))]
        if tasks:
            self.scheduler._run_here(timer, fire_ms, tasks)
        return True

