"""One fire of a schedule, run the same way on every preset.

The in-process scheduler, the Cloudflare Worker's ``scheduled`` handler and
the Vercel cron route all call :func:`run_fire`: the fire's tasks run in
parallel through the registry with ``payload={"scheduledTime": <fire time,
epoch ms>}`` and a context whose trigger is ``schedule:<cron>``. One task
failing never stops the others (Nitro lets one failure reject the whole
batch, anonymously). A task still running from an earlier call is joined
(the registry's dedupe) and logged as overlapping. Each task's run is one
log line: fire time, cron, task, outcome, duration; a failure carries its
traceback.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Literal

from .execution import describe
from .registry import Registry
from .task import TaskContext

Outcome = Literal["ok", "error"]

ContextFactory = Callable[[str], TaskContext]
"""Makes the context of one run from its trigger (``schedule:<cron>``)."""


def _plain_context(trigger: str) -> TaskContext:
    return TaskContext(trigger=trigger)


async def run_fire(
    registry: Registry,
    runs: Mapping[str, str],
    scheduled_ms: int | float,
    *,
    logger: logging.Logger,
    context: ContextFactory = _plain_context,
) -> dict[str, Outcome]:
    """Run one fire: ``runs`` maps each task name to the cron it was listed
    under (as written; it names the trigger). Returns each task's outcome.

    Cancelling the fire cancels its runs (each is logged as cancelled).
    """
    when = datetime.fromtimestamp(scheduled_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    payload = {"scheduledTime": scheduled_ms}

    async def one(name: str, cron: str) -> Outcome:
        overlapping = registry.is_running(name)
        started = time.perf_counter()

        def log(level: int, outcome: str, exc: BaseException | None = None) -> None:
            duration = (time.perf_counter() - started) * 1000
            logger.log(level, "%s cron=%r task=%s outcome=%s duration=%.1fms", when, cron,
                       name, outcome, duration, exc_info=exc)

        try:
            await registry.run(name, payload, context(f"schedule:{cron}"))
        except asyncio.CancelledError:
            log(logging.WARNING, "cancelled")
            raise
        except Exception as exc:
            joined = " (overlapping: joined the running call)" if overlapping else ""
            log(logging.ERROR, f"error{joined}: {describe(exc)}", exc)
            return "error"
        if overlapping:
            log(logging.WARNING, "overlapping: joined the running call")
        else:
            log(logging.INFO, "ok")
        return "ok"

    names = list(runs)
    outcomes = await asyncio.gather(*(one(name, runs[name]) for name in names))
    return dict(zip(names, outcomes, strict=True))
