"""Task options in the built Worker, inside real Pyodide (no threads), through
the shared harness: the option tasks of tests/options_project.py, fired by a
cron trigger (``scheduled``) and called over the task API (``fetch``).
Retries and timeouts (an async attempt cancelled, a sync one running inline
past its limit), ``max_concurrency`` through ``run_task``, and the Worker's
in-memory run history (there is no sqlite3 in Pyodide)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import tomlkit

from taskpack.builder.build import build
from tests.cloudflare.test_cloudflare_pyodide import (
    BASE_TIME,
    RECORD,
    RunWorker,
    emitted_crons,
    lines,
    records,
)
from tests.helpers import copy_example
from tests.options_project import BUSY_TIMEOUT, FANOUT, FLAKY_TIMEOUT, add_option_tasks

TOKEN = "options-token"
API = "https://options.example/_nitro/tasks"
AUTH = {"authorization": f"Bearer {TOKEN}"}
SCHEDULED = ("opts:flaky", "opts:busy", "opts:sync_retry")


def options_project(dest: Path) -> Path:
    copy_example(dest)
    add_option_tasks(dest, schedule="*/5 * * * *")
    path = dest / "taskpack.toml"
    config: Any = tomlkit.parse(path.read_text())
    config["cloudflare"] = {"tasks_api": True}
    path.write_text(tomlkit.dumps(config))
    return dest


def post(name: str) -> dict[str, Any]:
    return {"kind": "fetch", "method": "POST", "url": f"{API}/{name}", "headers": AUTH}


def body(call: dict[str, Any]) -> tuple[int, Any]:
    assert "error" not in call, call
    return call["response"]["status"], json.loads(call["response"]["body"])


def test_options_in_pyodide_scheduled_and_fetch(tmp_path: Path, run_worker: RunWorker) -> None:
    out = build(options_project(tmp_path / "project"), preset="cloudflare_module").output
    every_five = "*/5 * * * *"
    assert every_five in emitted_crons(out)
    calls = [
        {"kind": "scheduled", "cron": every_five, "scheduledTime": BASE_TIME},
        post("opts:flaky"),
        post("opts:busy"),
        post("opts:sync_retry"),
        post("opts:fanout"),
        *({"kind": "fetch", "url": f"{API}/{name}/runs?limit=5", "headers": AUTH}
          for name in (*SCHEDULED, "opts:limited")),
    ]
    result = run_worker(out / "src", calls, env={"TASKPACK_TASKS_TOKEN": TOKEN},
                        pythonEnv={"TASKPACK_EXAMPLE_RECORD": RECORD}, collect=[RECORD])
    assert result["import"]["ok"], result["import"]
    tick, flaky, busy, sync_retry, fanout, *histories = result["calls"]

    # scheduled: the three tasks ran with the fire time; busy's timeout failed
    # it alone (logged with its name), the retried ones succeeded.
    assert tick["waitUntil"] == [{"status": "fulfilled", "value": {
        "opts:flaky": "ok", "opts:busy": "error", "opts:sync_retry": "ok"}}]
    fired = {"scheduledTime": BASE_TIME}
    seen = [(r["task"], r["payload"]) for r in records(tick)]
    assert [p for t, p in seen if t == "opts:flaky"] == [
        {"attempt": 1, **fired}, {"attempt": 2, **fired}, {"attempt": 3, **fired}]
    assert ("opts:flaky:cancelled", {"attempt": 1}) in seen  # cancelled at its timeout
    assert [p for t, p in seen if t == "opts:sync_retry"] == [
        {"attempt": n, **fired} for n in (1, 2, 3)]
    assert [p for t, p in seen if t == "opts:busy"] == [fired]
    message = f"Task `opts:busy` timed out after {BUSY_TIMEOUT:g}s (attempt 1)"
    assert any(" run: task=opts:busy " in line and " outcome=timeout " in line
               and 'error="TaskTimeoutError: ' in line for line in lines(tick))
    assert any(message in line for line in lines(tick))

    # fetch: the same options over the task API.
    assert body(flaky) == (200, {"attempt": 3})
    status, error = body(busy)
    assert (status, error["message"]) == (504, message)
    assert body(sync_retry) == (200, {"attempt": 3})
    assert body(fanout) == (200, {"results": list(range(FANOUT)), "peak": 3})

    # The Worker's in-memory history (kept across events in the isolate).
    runs = {name: body(call)[1]["runs"] for name, call in
            zip((*SCHEDULED, "opts:limited"), histories, strict=True)}
    summary = {name: [(r["trigger"], r["outcome"], r["attempts"]) for r in found]
               for name, found in runs.items()}
    schedule = f"schedule:{every_five}"
    assert summary == {
        "opts:flaky": [("http", "ok", 3), (schedule, "ok", 3)],
        "opts:busy": [("http", "timeout", 1), (schedule, "timeout", 1)],
        "opts:sync_retry": [("http", "ok", 3), (schedule, "ok", 3)],
        "opts:limited": [("manual", "ok", 1)] * 5,  # run_task() from opts:fanout
    }
    assert all(r["duration_ms"] >= FLAKY_TIMEOUT * 1000 for r in runs["opts:flaky"])
    # Inline, the sync spin cannot be interrupted: the run ends when it returns.
    assert all(r["duration_ms"] >= 300 for r in runs["opts:busy"])
