"""The scheduler with a real event loop, real time and real task modules.

Every test runs a 6-field every-second schedule for a few seconds; task
modules append one JSON line per run to a file beside them.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from taskpack.builder.manifest import build_manifest
from taskpack.builder.project import load_project
from taskpack.registry import Registry, ScheduleEntry, TaskEntry
from taskpack.scheduler import Scheduler
from tests.helpers import MakeProject, write_files

RECORDING_TASK = """
import asyncio, json, pathlib, time
from taskpack import define_task

LOG = pathlib.Path(__file__).with_suffix(".log")

@define_task
async def run(event):
    entry = {{"at": time.time(), "scheduled": event.payload["scheduledTime"],
              "trigger": event.context.trigger}}
    with LOG.open("a") as f:
        f.write(json.dumps(entry) + "\\n")
    await asyncio.sleep({sleep})
    if {fail}:
        raise RuntimeError("boom at " + str(event.payload["scheduledTime"]))
    with LOG.open("a") as f:
        f.write(json.dumps({{"done": event.payload["scheduledTime"]}}) + "\\n")
    return "ok"
"""


def make_registry(root: Path, schedules: dict[str, list[str]],
                  tasks: dict[str, dict[str, Any]]) -> Registry:
    write_files(root, {
        f"tasks/{name}.py": RECORDING_TASK.format(sleep=opts.get("sleep", 0),
                                                  fail=opts.get("fail", False))
        for name, opts in tasks.items()
    })
    entries = {name: TaskEntry(name, f"tasks/{name}.py") for name in tasks}
    return Registry(root, entries, tuple(ScheduleEntry(cron, tuple(names))
                                         for cron, names in schedules.items()))


def records(root: Path, name: str) -> list[dict[str, Any]]:
    path = root / "tasks" / f"{name}.log"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def starts(root: Path, name: str) -> list[dict[str, Any]]:
    return [r for r in records(root, name) if "scheduled" in r]


async def run_for(scheduler: Scheduler, seconds: float, grace: float = 5.0) -> None:
    scheduler.start()
    await asyncio.sleep(seconds)
    await scheduler.stop(grace)


def test_every_second_ticks_carry_their_own_scheduled_time(tmp_path: Path) -> None:
    registry = make_registry(tmp_path, {"* * * * * *": ["tick"]}, {"tick": {}})
    asyncio.run(run_for(Scheduler(registry), 3.6))
    runs = starts(tmp_path, "tick")
    assert len(runs) >= 3
    scheduled = [r["scheduled"] for r in runs]
    assert all(ms % 1000 == 0 for ms in scheduled)
    assert all(b - a == 1000 for a, b in itertools.pairwise(scheduled))
    for run in runs:
        lateness = run["at"] - run["scheduled"] / 1000
        assert 0 <= lateness < 0.5, lateness  # generous: never early, never drifting
    assert {r["trigger"] for r in runs} == {"schedule:* * * * * *"}


def test_fires_due_since_the_process_was_ready_are_not_lost(tmp_path: Path) -> None:
    """A scheduler started a moment after its process was ready (``since``:
    a server starts it once it serves) runs the fires due in between, as
    on time; without ``since`` they would be before its start, and lost."""
    registry = make_registry(tmp_path, {"* * * * * *": ["tick"]}, {"tick": {}})
    started = time.time()
    missed = int(started)  # the one fire instant in (since, started]
    asyncio.run(run_for(Scheduler(registry, since=missed - 0.5), 0.5))
    runs = starts(tmp_path, "tick")
    assert missed * 1000 in [r["scheduled"] for r in runs], runs
    assert {r["trigger"] for r in runs} == {"schedule:* * * * * *"}


def test_a_raising_task_does_not_stop_the_next_tick_or_its_neighbours(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    registry = make_registry(tmp_path, {"* * * * * *": ["boom", "fine"]},
                             {"boom": {"fail": True}, "fine": {}})
    with caplog.at_level(logging.INFO, logger="taskpack"):
        asyncio.run(run_for(Scheduler(registry), 2.6))
    assert len(starts(tmp_path, "boom")) >= 2
    assert len([r for r in records(tmp_path, "fine") if "done" in r]) >= 2
    # One line per run (taskpack.run), the failure with its traceback.
    errors = [r for r in caplog.records if "task=boom" in r.getMessage()]
    assert len(errors) >= 2
    assert all(r.levelno == logging.ERROR and r.exc_info for r in errors)
    assert all(r.name == "taskpack.run" for r in errors)
    assert 'outcome=error attempts=1' in errors[0].getMessage()
    assert 'error="RuntimeError: boom at' in errors[0].getMessage()
    fine = [r.getMessage() for r in caplog.records if "task=fine" in r.getMessage()]
    assert len(fine) == len([r for r in records(tmp_path, "fine") if "done" in r])
    assert all('trigger="schedule:* * * * * *" outcome=ok' in m for m in fine)


def seconds_to_stop_while_slow_runs(tmp_path: Path, sleep: float, grace: float) -> float:
    """Start a scheduler firing ``slow`` (which sleeps ``sleep`` s) every
    second, wait for its first run, then time ``stop(grace)``."""
    registry = make_registry(tmp_path, {"* * * * * *": ["slow"]}, {"slow": {"sleep": sleep}})

    async def main() -> float:
        scheduler = Scheduler(registry)
        scheduler.start()
        while not starts(tmp_path, "slow"):
            await asyncio.sleep(0.05)
        began = time.monotonic()
        await scheduler.stop(grace)
        return time.monotonic() - began

    return asyncio.run(main())


def test_stop_waits_for_a_running_task(tmp_path: Path) -> None:
    waited = seconds_to_stop_while_slow_runs(tmp_path, sleep=1.5, grace=10)
    assert 1.0 < waited < 5
    done = [r["done"] for r in records(tmp_path, "slow") if "done" in r]
    assert done == [starts(tmp_path, "slow")[0]["scheduled"]]


def test_stop_cancels_after_the_grace_period(tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="taskpack"):
        waited = seconds_to_stop_while_slow_runs(tmp_path, sleep=30, grace=0.3)
    assert 0.2 < waited < 3
    assert not [r for r in records(tmp_path, "slow") if "done" in r]
    assert any("task=slow" in r.getMessage() and "outcome=cancelled" in r.getMessage()
               for r in caplog.records if r.name == "taskpack.run")


def test_an_overlapping_tick_joins_the_running_call(tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    registry = make_registry(tmp_path, {"* * * * * *": ["slow"]}, {"slow": {"sleep": 1.6}})
    with caplog.at_level(logging.INFO, logger="taskpack"):
        asyncio.run(run_for(Scheduler(registry), 3.3))
    joins = [r for r in caplog.records if r.name == "taskpack.scheduler"
             and "task=slow overlapping: joined the running call" in r.getMessage()]
    runs = [r for r in caplog.records if r.name == "taskpack.run"]
    assert joins and len(runs) == len(starts(tmp_path, "slow"))


def test_equal_schedules_share_one_timer(tmp_path: Path) -> None:
    registry = make_registry(tmp_path, {"* * * * * *": ["tick"], "*/1 * * * * *": ["tick"],
                                        "0-59 * * * * *": ["other"]},
                             {"tick": {}, "other": {}})
    asyncio.run(run_for(Scheduler(registry), 2.6))
    scheduled = [r["scheduled"] for r in starts(tmp_path, "tick")]
    assert len(scheduled) >= 2
    assert len(set(scheduled)) == len(scheduled)
    assert {r["trigger"] for r in starts(tmp_path, "other")} == {"schedule:0-59 * * * * *"}


class JumpingClock:
    """The real wall clock plus an offset a test moves (a system clock change)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def test_clock_jumps(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    registry = make_registry(tmp_path, {"* * * * * *": ["tick"]}, {"tick": {}})
    clock = JumpingClock()

    async def main() -> None:
        scheduler = Scheduler(registry, clock=clock)
        scheduler.start()
        await asyncio.sleep(1.5)
        clock.offset += 30  # forwards: the ticks jumped over are missed, not replayed
        await asyncio.sleep(1.5)
        clock.offset -= 10  # backwards: nothing fires twice, and it keeps firing
        await asyncio.sleep(2.2)
        await scheduler.stop(5)

    with caplog.at_level(logging.INFO, logger="taskpack.scheduler"):
        asyncio.run(main())
    scheduled = [r["scheduled"] for r in starts(tmp_path, "tick")]
    assert len(scheduled) == len(set(scheduled))
    assert 3 <= len(scheduled) <= 8, scheduled
    gaps = [b - a for a, b in itertools.pairwise(scheduled)]
    assert any(gap > 20_000 for gap in gaps), gaps  # the jump was noticed, not replayed
    assert gaps[-1] < 0, gaps  # fired again after the step back, at instants not yet fired
    messages = [r.getMessage() for r in caplog.records]
    assert any("stepped back 10.0s" in m for m in messages), messages
    assert any("fires missed" in m and "not run" in m for m in messages), messages


def test_a_step_back_of_an_hour_does_not_silence_the_schedule(tmp_path: Path) -> None:
    """A clock an hour ahead is corrected (an NTP step back): the schedule
    keeps firing at the corrected time, instead of waiting an hour for the
    instant it had planned before the step."""
    registry = make_registry(tmp_path, {"* * * * * *": ["tick"]}, {"tick": {}})
    clock = JumpingClock()
    clock.offset = 3600.0

    async def main() -> None:
        scheduler = Scheduler(registry, clock=clock)
        scheduler.start()
        while len(starts(tmp_path, "tick")) < 2:
            await asyncio.sleep(0.05)
        clock.offset = 0.0
        stepped = time.time()
        deadline = time.monotonic() + 10
        while not [r for r in starts(tmp_path, "tick") if r["scheduled"] / 1000 < stepped + 60]:
            assert time.monotonic() < deadline, "nothing fired after the step back"
            await asyncio.sleep(0.05)
        await scheduler.stop(5)

    asyncio.run(main())
    scheduled = [r["scheduled"] / 1000 for r in starts(tmp_path, "tick")]
    assert scheduled[0] > time.time() + 3000  # fired on the clock an hour ahead first
    assert abs(scheduled[-1] - time.time()) < 15  # then on the corrected clock


def test_start_needs_a_running_loop(tmp_path: Path) -> None:
    registry = make_registry(tmp_path, {"* * * * * *": ["tick"]}, {"tick": {}})
    with pytest.raises(RuntimeError):
        Scheduler(registry).start()


def test_from_a_project_through_the_manifest(make_project: MakeProject) -> None:
    """Config -> load_project -> manifest -> Registry -> Scheduler, in a zone."""
    root = make_project({
        "tasks/tick.py": RECORDING_TASK.format(sleep=0, fail=False),
        "taskpack.toml": 'timezone = "Europe/Berlin"\n'
                         '[scheduled_tasks]\n"*/1 * * * * MON-SUN" = "tick"\n',
    })
    manifest = build_manifest(load_project(root))
    registry = Registry.from_manifest(manifest, root)
    scheduler = Scheduler(registry)
    assert scheduler.timezone == ZoneInfo("Europe/Berlin")
    asyncio.run(run_for(scheduler, 2.5))
    runs = starts(root, "tick")
    assert len(runs) >= 2
    assert {r["trigger"] for r in runs} == {"schedule:*/1 * * * * MON-SUN"}
