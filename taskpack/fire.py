"""One fire of a schedule, run the same way on every preset.

The in-process scheduler, the Cloudflare Worker's ``scheduled`` handler and
the Vercel cron route all call :func:`run_fire`: the fire's tasks run in
parallel through the registry with ``payload={"scheduledTime": <fire time,
epoch ms>}`` and a context whose trigger is ``schedule:<cron>``. One task
failing never stops the others (Nitro lets one failure reject the whole
batch, anonymously). A task still running from an earlier call is joined
(the registry's dedupe) and logged as overlapping. Each task's run is
logged as one line by the execution layer (``taskpack.run``, trigger
``schedule:<cron>``); the fire itself logs only what is not a run: a join
of a running call, and a task that could not start (unknown, not
implemented, not importable).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Literal

from .errors import TaskLoadError, TaskNotFoundError, TaskNotImplementedError
from .logs import logfmt
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

    Cancelling the fire cancels its runs (each run's line says so).
    """
    when = datetime.fromtimestamp(scheduled_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    payload = {"scheduledTime": scheduled_ms}

    async def one(name: str, cron: str) -> Outcome:
        overlapping = registry.is_running(name)

        def log(level: int, what: str) -> None:
            logger.log(level, "%s %s", logfmt({"fire": when, "cron": cron, "task": name}), what)

        try:
            await registry.run(name, payload, context(f"schedule:{cron}"))
        except (TaskNotFoundError, TaskNotImplementedError, TaskLoadError) as exc:
            log(logging.ERROR, f"not run: {exc}")  # no run, so no run line
            return "error"
        except Exception:
            if overlapping:
                log(logging.WARNING, "overlapping: joined the running call, which failed")
            return "error"  # the run's own line (taskpack.run) has the error
        if overlapping:
            log(logging.WARNING, "overlapping: joined the running call")
        return "ok"

    names = list(runs)
    outcomes = await asyncio.gather(*(one(name, runs[name]) for name in names))
    return dict(zip(names, outcomes, strict=True))
