"""What a run's log line costs the event loop thread.

Run: ``.venv/bin/python bench/log_run.py`` (``--calls N`` to change the
sample). Calls ``log_run`` for a finished run on a running loop, the way a
run ends (``logs.setup()`` installed, lines written to a file once per loop
iteration, ten runs per iteration, records made as the ``server`` bundle makes them: see
``logs.lean_records``), and prints a Markdown table of µs per
line, best of five rounds: text and JSON format, a plain run and a queued
job's run, and the same loop with the line turned off (the ``taskpack.run``
logger at WARNING; what is left is the loop's own cost, subtracted from the
other rows).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from taskpack import logs
from taskpack.execution import log_run, new_run_id, run_record

PER_ITERATION = 10


async def per_line(calls: int, more: dict[str, Any] | None, repeats: int = 5) -> float:
    """Best-of-``repeats`` µs per ``log_run`` call (its share of the flush
    included)."""
    run = run_record(new_run_id(), "reports:daily", "http", {"k": "v"}, time.time(), 0.000412,
                     1, "ok", None, {"ok": True}, None)
    enabled = logging.getLogger(logs.RUN_LOGGER).isEnabledFor
    best = []
    for _ in range(repeats):
        start = time.perf_counter()
        for index in range(calls):
            if enabled(logging.INFO):  # as the callers do
                log_run(run, logging.INFO, None, more)
            if index % PER_ITERATION == PER_ITERATION - 1:
                await asyncio.sleep(0)
        await asyncio.sleep(0)
        best.append((time.perf_counter() - start) / calls * 1e6)
    return min(best)


def measure(calls: int, fmt: str, more: dict[str, Any] | None, off: bool = False) -> float:
    with tempfile.TemporaryDirectory() as tmp, open(Path(tmp) / "log", "w") as stream:
        logs.setup({"TASKPACK_LOG_FORMAT": fmt}, stream)
        if off:
            logging.getLogger(logs.RUN_LOGGER).setLevel(logging.WARNING)
        try:
            return asyncio.run(per_line(calls, more))
        finally:
            logging.getLogger(logs.RUN_LOGGER).setLevel(logging.NOTSET)
            logs.teardown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    calls = parser.parse_args().calls
    logs.lean_records()  # as the server bundles do
    job = {"job": new_run_id(), "max_attempts": 3}
    off = measure(calls, "text", None, off=True)
    print("| line | µs per run (loop overhead subtracted) |\n|---|---|")
    print(f"| off (loop overhead, not subtracted) | {off:.2f} |")
    for fmt in ("text", "json"):
        for label, more in (("run", None), ("job", job)):
            print(f"| {fmt}, {label} | {measure(calls, fmt, more) - off:.2f} |")


if __name__ == "__main__":
    main()
