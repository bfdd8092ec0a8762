"""One fire of one schedule, run by a Kubernetes CronJob (preset ``kubernetes``).

Each CronJob's container runs::

    python -m taskpack.platforms.kubernetes '<schedule as deployed>'

(the bundle's folder on ``PYTHONPATH``). The tasks are those of every
schedule of the bundle's manifest that means the same as the argument (the
build merged them into one CronJob); they run once through
:func:`taskpack.fire.run_fire` and the process exits 0 when all succeeded,
1 when one failed (the Job shows as failed; its ``backoffLimit`` is 0, so
tasks that succeeded are never re-run by a retry), 2 for a bad argument.

``scheduledTime`` is the time the controller scheduled the Job for:

1. ``TASKPACK_SCHEDULED_TIME`` when set (RFC 3339; for a Job created by
   hand);
2. else the Job's name from ``TASKPACK_JOB_NAME`` (the manifest passes the
   pod's ``batch.kubernetes.io/job-name`` label through the downward API).
   The controller names each Job ``<cronjob>-<scheduled time in minutes
   since the epoch>``; the same instant is written, in the CronJob's time
   zone, into the Job's ``batch.kubernetes.io/cronjob-scheduled-timestamp``
   annotation, which the downward API cannot reach (it reads the pod, and
   the controller sets the annotation on the Job only). A suffix more than
   :data:`MAX_AGE` old or in the future (a Job made with ``kubectl create
   job --from``) is not trusted;
3. else the schedule's latest fire time at or before now, computed in the
   bundle's time zone.

The runs are recorded in the bundle's store, chosen as the server's is
(:func:`taskpack.server.bundle_store`: ``$TASKPACK_DATABASE_URL`` from the
Secret, else ``[store] url``, else a SQLite file in the working
directory, which dies with the pod): opened before the fire, closed after
it, so the runs still buffered are written (within
:data:`STORE_CLOSE_TIMEOUT` seconds) before the process exits. A store
that cannot be used (bad URL, unreachable, auth refused) is one error
line and exit 2, before any task runs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from .. import logs
from ..cron import CronError, CronExpr
from ..fire import Outcome, run_fire
from ..layout import load_registry, read_manifest
from ..registry import Registry
from ..server import ServerConfigError, bundle_store
from ..store import StoreError
from . import epoch_ms

logger = logging.getLogger("taskpack.kubernetes")

SCHEDULED_TIME_ENV = "TASKPACK_SCHEDULED_TIME"
JOB_NAME_ENV = "TASKPACK_JOB_NAME"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
MAX_AGE = timedelta(days=7)
STORE_CLOSE_TIMEOUT = 10.0
_MINUTES_SUFFIX = re.compile(r"-(\d+)$")
_LOOKBACK = (timedelta(hours=1), timedelta(days=1), timedelta(days=32), timedelta(days=367),
             timedelta(days=366 * 8))


class FireError(ValueError):
    """The command line names no schedule of the bundle; ``str()`` is one line."""


def runs_for(registry: Registry, schedule: str) -> dict[str, str]:
    """Each task of the schedules meaning the same as ``schedule``, mapped
    to the cron it was listed under (as written); :class:`FireError` when
    there is none."""
    try:
        wanted = CronExpr.parse(schedule)
    except CronError as exc:
        raise FireError(f"schedule {schedule!r}: {exc}") from None
    runs: dict[str, str] = {}
    for entry in registry.schedules:
        if CronExpr.parse(entry.cron) == wanted:
            for name in entry.tasks:
                runs.setdefault(name, entry.cron)
    if not runs:
        known = ", ".join(repr(entry.cron) for entry in registry.schedules) or "none"
        raise FireError(f"no schedule of this bundle means {schedule!r} (known: {known})")
    return runs


def scheduled_time(expr: CronExpr, timezone: str, env: Mapping[str, str],
                   now: datetime) -> tuple[int, str]:
    """``scheduledTime`` (epoch ms) and where it came from (module docstring)."""
    given = env.get(SCHEDULED_TIME_ENV, "").strip()
    if given:
        try:
            return epoch_ms(given), SCHEDULED_TIME_ENV
        except ValueError as exc:
            raise FireError(f"{SCHEDULED_TIME_ENV}: {given!r} {exc}") from None
    match = _MINUTES_SUFFIX.search(env.get(JOB_NAME_ENV, ""))
    if match:
        when = datetime.fromtimestamp(int(match.group(1)) * 60, UTC)
        if now - MAX_AGE <= when <= now + timedelta(minutes=1):
            return int(when.timestamp() * 1000), f"Job name {env[JOB_NAME_ENV]!r}"
    return int(latest_fire(expr, timezone, now).timestamp() * 1000), "the schedule"


def latest_fire(expr: CronExpr, timezone: str, now: datetime) -> datetime:
    """The schedule's last fire time at or before ``now`` (looking back up
    to eight years), else ``now``."""
    for window in _LOOKBACK:
        latest = None
        for fire in expr.iter_after(now - window, timezone):
            if fire > now:
                break
            latest = fire
        if latest is not None:
            return latest
    return now


async def fire_once(registry: Registry, schedule: str, env: Mapping[str, str],
                    now: datetime) -> dict[str, Outcome]:
    """Run the fire of ``schedule`` once, between opening the registry's
    store and closing it (its runs written); each task's outcome.
    :class:`FireError` for a bad argument, :class:`StoreError` for a store
    that cannot be opened (both before any task runs)."""
    runs = runs_for(registry, schedule)
    scheduled_ms, source = scheduled_time(CronExpr.parse(schedule), registry.timezone, env, now)
    await registry.open()
    try:
        logger.info("fire of %r at %s (from %s): %s", schedule,
                    datetime.fromtimestamp(scheduled_ms / 1000, UTC).isoformat(), source,
                    ", ".join(runs))
        try:
            return await run_fire(registry, runs, scheduled_ms, logger=logger)
        finally:
            await registry.drain()
    finally:
        await registry.close(STORE_CLOSE_TIMEOUT)


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """``python -m taskpack.platforms.kubernetes SCHEDULE``: the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        logs.setup(env)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if len(args) != 1:
        print("usage: python -m taskpack.platforms.kubernetes SCHEDULE", file=sys.stderr)
        return 2
    env = os.environ if env is None else env
    base = Path(__file__).resolve().parent.parent.parent  # the bundle: <base>/taskpack/platforms
    try:
        manifest = read_manifest(base)
        registry = load_registry(base, manifest, store=bundle_store(manifest, env))
        outcomes = asyncio.run(fire_once(registry, args[0], env, datetime.now(UTC)))
    except (FireError, ServerConfigError, StoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0 if all(outcome == "ok" for outcome in outcomes.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
