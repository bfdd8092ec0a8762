"""How much run_task adds to calling a task function directly.

Run: ``.venv/bin/python bench/run_task.py`` (``--calls N`` to change the
sample). Prints a Markdown table: µs per call for a trivial async and sync
task through ``Registry.run`` and for the same function called directly
(the baseline, measured in the same run), and the time for 1,000 concurrent
same-name calls (joined by dedupe) against 1,000 direct awaits. The default
registry records runs in memory (``memory://``); the last row compares it
(the baseline) with the SQLite store, in interleaved rounds; the SQLite
figure includes waiting for its writer thread to commit every buffered run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from taskpack import Registry, TaskEvent
from taskpack.registry import TaskEntry

SOURCES = {
    "tasks/noop_async.py": (
        "from taskpack import define_task\n\n"
        "@define_task\nasync def run(event):\n    return event.payload\n"
    ),
    "tasks/noop_sync.py": (
        "from taskpack import define_task\n\n"
        "@define_task\ndef run(event):\n    return event.payload\n"
    ),
}


def make_registry(root: Path, store: str = "memory://") -> Registry:
    for rel, text in SOURCES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    entries = {name: TaskEntry(name, f"tasks/{name}.py") for name in ("noop_async", "noop_sync")}
    return Registry(root, entries, store=store)


async def per_call(fn: Callable[[], Awaitable[Any]], calls: int, repeats: int = 5) -> float:
    """Best-of-``repeats`` µs per sequential call."""
    best = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            await fn()
        best.append((time.perf_counter() - start) / calls * 1e6)
    return min(best)


async def concurrent(fn: Callable[[], Awaitable[Any]], n: int, repeats: int = 20) -> float:
    """Median ms for ``n`` concurrent calls gathered in one tick."""
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        await asyncio.gather(*(fn() for _ in range(n)))
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples)


async def measure(registry: Registry, calls: int) -> list[tuple[str, float, float, str]]:
    a_task, s_task = registry.get("noop_async"), registry.get("noop_sync")
    event = TaskEvent("noop_async", {})
    rows = []

    direct_async = await per_call(lambda: a_task.run(event), calls)
    via_async = await per_call(lambda: registry.run("noop_async"), calls)
    rows.append(("trivial async task, µs/call", direct_async, via_async, "µs"))

    def sync_direct() -> Awaitable[Any]:
        return asyncio.to_thread(s_task.run, event)  # the baseline pays for the thread too

    direct_sync = await per_call(sync_direct, calls // 10)
    via_sync = await per_call(lambda: registry.run("noop_sync"), calls // 10)
    rows.append(("trivial sync task (worker thread), µs/call", direct_sync, via_sync, "µs"))

    direct_many = await concurrent(lambda: a_task.run(event), 1000)
    via_many = await concurrent(lambda: registry.run("noop_async"), 1000)
    rows.append(("1,000 concurrent same-name calls, ms", direct_many, via_many, "ms"))

    # History in memory / SQLite, interleaved so load changes hit both alike.
    root = registry.root
    stores = {"memory": make_registry(root),
              "sqlite": make_registry(root, "sqlite:///.taskpack/bench.sqlite")}
    for reg in stores.values():
        await reg.open()
    best = dict.fromkeys(stores, float("inf"))
    n = calls // 5
    for _ in range(7):
        for kind, reg in stores.items():
            start = time.perf_counter()
            for _ in range(n):
                await reg.run("noop_async")
            await reg.store.flush(60)  # SQLite: count the batched writes too
            best[kind] = min(best[kind], (time.perf_counter() - start) / n * 1e6)
    for reg in stores.values():
        await reg.close()
    rows.append(("async task, history in SQLite vs memory, µs/call", best["memory"],
                 best["sqlite"], "µs"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = asyncio.run(measure(make_registry(Path(tmp)), args.calls))
    print(f"Python {sys.version.split()[0]}, {args.calls} calls per sample\n")
    print("| measurement | baseline | run_task | overhead | ratio |")
    print("|---|---|---|---|---|")
    for label, base, via, unit in rows:
        print(f"| {label} | {base:.2f} {unit} | {via:.2f} {unit} | "
              f"{via - base:+.2f} {unit} | {via / base:.2f}x |")


if __name__ == "__main__":
    main()
