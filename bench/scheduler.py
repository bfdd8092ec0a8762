"""How punctual and how cheap the in-process scheduler is.

Run: ``.venv/bin/python bench/scheduler.py`` (``--seconds N`` to shorten the
default 60 s per phase). Two phases, one after the other:

- baseline: a bare asyncio loop that sleeps until each whole second of the
  wall clock and records how late it woke (the event loop's own timer
  jitter, the floor any scheduler sits on);
- scheduler: :class:`taskpack.scheduler.Scheduler` firing ``* * * * * *``
  with 10 tasks through the registry; each task records how late it started
  after its ``scheduledTime``.

Prints a Markdown table: lateness p50/p99/max (ms), missed and duplicate
ticks, and CPU seconds used (as a share of wall time). Targets: p99 under
5 ms, no missed or duplicate tick, under 1% CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from taskpack.registry import Registry, ScheduleEntry, TaskEntry
from taskpack.scheduler import Scheduler

TASKS = 10
PROBE = "taskpack_bench_probe"
TASK_SOURCE = f"""
import time
from taskpack import define_task
from {PROBE} import RECORD

@define_task
async def run(event):
    RECORD.append((event.name, event.payload["scheduledTime"], time.time()))
"""


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


async def baseline(seconds: float) -> tuple[list[float], float]:
    """Lateness (ms) of bare wake-ups at whole seconds, and CPU seconds."""
    lateness: list[float] = []
    cpu = time.process_time()
    end = time.time() + seconds
    while True:
        target = int(time.time()) + 1
        if target > end:
            break
        while (wait := target - time.time()) > 0:
            await asyncio.sleep(wait)
        lateness.append((time.time() - target) * 1000)
    return lateness, time.process_time() - cpu


async def scheduled(root: Path, seconds: float) -> tuple[list[tuple[str, int, float]], float]:
    """(task, scheduledTime ms, start time) per run, and CPU seconds."""
    (root / f"{PROBE}.py").write_text("RECORD = []\n")
    sys.path.insert(0, str(root))
    from taskpack_bench_probe import RECORD  # type: ignore[import-not-found]

    names = [f"t{i}" for i in range(TASKS)]
    for name in names:
        (root / "tasks").mkdir(exist_ok=True)
        (root / "tasks" / f"{name}.py").write_text(TASK_SOURCE)
    registry = Registry(root, {n: TaskEntry(n, f"tasks/{n}.py") for n in names},
                        (ScheduleEntry("* * * * * *", tuple(names)),))
    for name in names:
        registry.get(name)  # import up front: measure firing, not first imports
    scheduler = Scheduler(registry)
    cpu = time.process_time()
    scheduler.start()
    await asyncio.sleep(seconds)
    await scheduler.stop(5)
    return list(RECORD), time.process_time() - cpu


def tick_counts(record: list[tuple[str, int, float]]) -> tuple[int, int, int]:
    """(ticks, missed, duplicates) over all tasks."""
    missed = duplicates = 0
    ticks = 0
    for name in {r[0] for r in record}:
        times = [r[1] for r in record if r[0] == name]
        seen = set(times)
        duplicates += len(times) - len(seen)
        expected = set(range(min(seen), max(seen) + 1, 1000))
        missed += len(expected - seen)
        ticks = max(ticks, len(expected))
    return ticks, missed, duplicates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each phase")
    args = parser.parse_args()

    base_lateness, base_cpu = asyncio.run(baseline(args.seconds))
    with tempfile.TemporaryDirectory() as tmp:
        record, cpu = asyncio.run(scheduled(Path(tmp), args.seconds))
    lateness = [(start - ms / 1000) * 1000 for _, ms, start in record]
    ticks, missed, duplicates = tick_counts(record)

    print(f"Python {platform.python_version()}, {args.seconds:g} s per phase, "
          f"`* * * * * *` with {TASKS} tasks ({len(record)} runs over {ticks} ticks), "
          f"{time.strftime('%Y-%m-%d')}:\n")
    print("| measurement | bare loop wake-up (baseline) | scheduler, 10 tasks | ratio |")
    print("|---|---|---|---|")
    for label, share in (("lateness p50, ms", 0.5), ("lateness p99, ms", 0.99),
                         ("lateness max, ms", 1.0)):
        base, ours = percentile(base_lateness, share), percentile(lateness, share)
        print(f"| {label} | {base:.2f} | {ours:.2f} | {ours / base:.2f}x |")
    print(f"| CPU seconds (share of wall time) | {base_cpu:.3f} ({base_cpu / args.seconds:.2%}) "
          f"| {cpu:.3f} ({cpu / args.seconds:.2%}) | {cpu / max(base_cpu, 1e-9):.2f}x |")
    print(f"| missed ticks | - | {missed} | |")
    print(f"| duplicate ticks | - | {duplicates} | |")
    print(f"\nmean lateness: baseline {statistics.fmean(base_lateness):.2f} ms, "
          f"scheduler {statistics.fmean(lateness):.2f} ms")


if __name__ == "__main__":
    main()
