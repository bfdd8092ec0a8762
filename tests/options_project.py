"""Task options as a built bundle runs them: four tasks added to a copy of
``examples/basic`` (its ``jobs.record`` helper writes what they saw to
``$TASKPACK_EXAMPLE_RECORD``). The same files are built with the ``server``
preset (tests/test_self_hosted.py) and the ``cloudflare_module`` preset, run
in Pyodide without threads (tests/cloudflare/test_cloudflare_options.py).

* ``opts:flaky`` (async; ``retries`` and ``timeout`` from ``define_task``):
  attempt 1 overruns its 0.5 s timeout and is cancelled, attempt 2 raises,
  attempt 3 returns ``{"attempt": 3}``.
* ``opts:busy`` (sync; ``timeout = 0.1`` from the config, which wins over
  the ``define_task`` value): spins for 0.3 s, so it times out.
* ``opts:sync_retry`` (sync; ``retries``): fails twice, then succeeds.
* ``opts:fanout`` runs ``opts:limited`` (``max_concurrency=3``) 12 times at
  once through ``run_task``; it returns the results and the highest number
  of ``opts:limited`` runs seen at the same time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tomlkit

from tests.helpers import write_files

FLAKY_TIMEOUT = 0.5
BUSY_TIMEOUT = 0.1
FANOUT = 12

OPTION_TASKS = {
    "tasks/opts/flaky.py": f'''
        import asyncio

        from jobs.record import record
        from taskpack import RetryPolicy, define_task

        @define_task(description="Time out, then fail, then succeed",
                     retries=RetryPolicy(max_attempts=3, min_delay=0.01, jitter=False),
                     timeout={FLAKY_TIMEOUT})
        async def run(event):
            record("opts:flaky", {{"attempt": event.attempt, **event.payload}})
            if event.attempt == 1:
                try:
                    await asyncio.sleep(30)
                except asyncio.CancelledError:
                    record("opts:flaky:cancelled", {{"attempt": event.attempt}})
                    raise
            if event.attempt == 2:
                raise RuntimeError("the second attempt fails")
            return {{"attempt": event.attempt}}
    ''',
    "tasks/opts/busy.py": '''
        import time

        from jobs.record import record
        from taskpack import define_task

        @define_task(description="Spin past the config's timeout", timeout=30)
        def run(event):
            record("opts:busy", event.payload)
            began = time.monotonic()
            while time.monotonic() - began < 0.3:
                pass
            return "too late"
    ''',
    "tasks/opts/sync_retry.py": '''
        from jobs.record import record
        from taskpack import RetryPolicy, define_task

        @define_task(description="Fail twice, then succeed",
                     retries=RetryPolicy(max_attempts=3, min_delay=0.01, jitter=False))
        def run(event):
            record("opts:sync_retry", {"attempt": event.attempt, **event.payload})
            if event.attempt < 3:
                raise RuntimeError("not yet")
            return {"attempt": event.attempt}
    ''',
    "tasks/opts/limited.py": '''
        import asyncio

        from taskpack import define_task

        active = [0, 0]  # running now, most ever

        @define_task(description="At most three at once", max_concurrency=3)
        async def run(event):
            active[0] += 1
            active[1] = max(active[1], active[0])
            await asyncio.sleep(0.02)
            active[0] -= 1
            return {"i": event.payload["i"], "peak": active[1]}
    ''',
    "tasks/opts/fanout.py": f'''
        import asyncio

        from taskpack import define_task, run_task

        @define_task(description="Run opts:limited {FANOUT} times at once")
        async def run(event):
            runs = await asyncio.gather(
                *(run_task("opts:limited", {{"i": i}}) for i in range({FANOUT})))
            return {{"results": [r["i"] for r in runs], "peak": max(r["peak"] for r in runs)}}
    ''',
}

OPTION_CONFIG = {"opts:busy": {"timeout": BUSY_TIMEOUT}}


def add_option_tasks(root: Path, schedule: str | None = None) -> Path:
    """Write the option tasks into the project at ``root`` and their config
    (``schedule``: a cron also firing flaky, busy and sync_retry)."""
    write_files(root, OPTION_TASKS)
    path = root / "taskpack.toml"
    config: Any = tomlkit.parse(path.read_text())
    tasks = config.setdefault("tasks", tomlkit.table(is_super_table=True))
    for name, options in OPTION_CONFIG.items():
        tasks[name] = options
    if schedule is not None:
        config["scheduled_tasks"][schedule] = ["opts:flaky", "opts:busy", "opts:sync_retry"]
    path.write_text(tomlkit.dumps(config))
    return root
