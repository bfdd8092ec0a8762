# Task options inside Pyodide (no threads): retries, async and inline-sync
# timeouts, concurrency limits and the in-memory history. Run by
# tests/test_pyodide_options.py through run.mjs; the result is the
# JSON string ``main()`` returns.
import asyncio
import json
import sys
import time

from taskpack import Registry, RetryPolicy, TaskTimeoutError, define_task

FAST = RetryPolicy(max_attempts=3, min_delay=0.01, jitter=False)
out = {"python": sys.version.split()[0]}
attempts = []
cancelled = []
active = [0, 0]  # now, peak


async def flaky(event):
    attempts.append(event.attempt)
    if event.attempt == 1:
        try:
            await asyncio.sleep(30)  # times out
        except asyncio.CancelledError:
            cancelled.append(event.attempt)
            raise
    if event.attempt == 2:
        raise RuntimeError("again")
    return event.attempt


def busy(event):
    began = time.monotonic()
    while time.monotonic() - began < 0.1:
        pass
    return "too late"


def sync_retry(event):
    if event.attempt < 3:
        raise RuntimeError("not yet")
    return event.attempt


async def limited(event):
    active[0] += 1
    active[1] = max(active[1], active[0])
    await asyncio.sleep(0.01)
    active[0] -= 1
    return event.payload["i"]


registry = Registry.of({
    "flaky": define_task(flaky, timeout=0.05, retries=FAST),
    "busy": define_task(busy, timeout=0.02),
    "sync_retry": define_task(sync_retry, retries=FAST),
    "limited": define_task(limited, max_concurrency=3),
}, threads=False)


async def main():
    began = time.monotonic()
    out["flaky"] = await registry.run("flaky")
    out["flaky_seconds"] = time.monotonic() - began
    out["flaky_attempts"] = attempts
    out["flaky_cancelled"] = cancelled
    try:
        await registry.run("busy")
    except TaskTimeoutError as exc:
        out["busy"] = exc.message
    out["sync_retry"] = await registry.run("sync_retry")
    out["limited"] = await asyncio.gather(*(registry.run("limited", {"i": i}) for i in range(20)))
    out["limited_peak"] = active[1]
    last = registry.history.last_runs()
    out["history"] = {task: [run.outcome, run.attempts] for task, run in last.items()}
    return json.dumps(out)
