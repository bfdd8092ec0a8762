"""The generated Worker run in real Pyodide (0.28.2, Python 3.13) with
Cloudflare's real SDK wheel, through ``harness.mjs``: ``Default(ctx, env)``
is instantiated per event as workerd does, ``scheduled`` gets a controller
per emitted trigger, ``fetch`` gets real JS Requests. Only workerd itself is
absent (its two private modules are stand-ins, see the harness)."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from taskpack.builder.build import build
from tests.helpers import MakeProject

RunWorker = Callable[..., dict[str, Any]]

RECORD = "/tmp/taskpack-records.jsonl"
BASE_TIME = 1_764_158_400_000  # 2025-11-26T12:00:00Z, epoch ms


def emitted_crons(out: Path) -> list[str]:
    crons: list[str] = tomllib.loads((out / "wrangler.toml").read_text())["triggers"]["crons"]
    return crons


def records(call: dict[str, Any]) -> list[dict[str, Any]]:
    text = call["files"][RECORD] or ""
    return [json.loads(line) for line in text.splitlines()]


def lines(call: dict[str, Any], stream: str | None = None) -> list[str]:
    return [log["line"] for log in call["logs"] if stream in (None, log["stream"])]


def test_every_trigger_of_the_basic_example_runs_its_tasks(
    basic_example: Path, run_worker: RunWorker
) -> None:
    out = build(basic_example, preset="cloudflare_module").output
    crons = emitted_crons(out)
    manifest_triggers = {
        "* * * * *": ["cms:update"],
        "0 * * * *": ["db:migrate"],
        "0 6 * * MON-FRI": ["report:daily", "cms:update"],
    }
    assert crons == list(manifest_triggers)
    calls = [
        {"kind": "scheduled", "cron": cron, "scheduledTime": BASE_TIME + i * 60_000}
        for i, cron in enumerate(crons)
    ]
    calls += [
        {"kind": "scheduled", "cron": "5 4 * * *", "scheduledTime": BASE_TIME},
        {"kind": "fetch", "url": "https://basic.example/_nitro/tasks"},
        {"kind": "fetch", "url": "https://basic.example/"},
    ]
    result = run_worker(
        out / "src", calls, pythonEnv={"TASKPACK_EXAMPLE_RECORD": RECORD}, collect=[RECORD]
    )
    assert result["import"]["ok"], result["import"]
    *scheduled, unknown, listing, root = result["calls"]

    for i, (cron, call) in enumerate(zip(crons, scheduled, strict=True)):
        fired = BASE_TIME + i * 60_000
        tasks = manifest_triggers[cron]
        assert "error" not in call, call
        # The work went to ctx.waitUntil, and every task of the trigger succeeded.
        assert call["waitUntil"] == [
            {"status": "fulfilled", "value": dict.fromkeys(tasks, "ok")}
        ], cron
        # ... with this fire's scheduledTime (db:migrate prints, the others record).
        recorded = {r["task"]: r["payload"] for r in records(call)}
        for task in tasks:
            if task == "db:migrate":
                assert lines(call, "stdout") == [
                    f"Running DB migration task... {{'scheduledTime': {fired}}}"
                ]
            else:
                assert recorded[task] == {"scheduledTime": fired}, (cron, task)
        assert set(recorded) == set(tasks) - {"db:migrate"}

    # A cron string the build did not emit is logged and ignored.
    assert unknown["waitUntil"] == [{"status": "fulfilled", "value": {}}]
    assert any("no tasks for cron trigger '5 4 * * *'" in line for line in lines(unknown))
    assert records(unknown) == []

    # The task API is off by default: 404 for everything.
    for call in (listing, root):
        assert call["response"]["status"] == 404
        assert json.loads(call["response"]["body"])["statusCode"] == 404


PROJECT = {
    "taskpack.toml": """
        [scheduled_tasks]
        "*/5 * * * *" = ["ok", "boom", "sync_job", "later"]
        "0 0 * * 0" = "ok"

        [cloudflare]
        tasks_api = true
        """,
    "recorder.py": """
        import json
        import os

        def record(**data):
            with open(os.environ["RECORD_FILE"], "a") as fh:
                fh.write(json.dumps(data, sort_keys=True) + "\\n")
        """,
    "tasks/ok.py": """
        from recorder import record
        from taskpack import define_task

        @define_task(description="Records what it got")
        async def run(event):
            ctx = event.context
            record(task="ok", payload=event.payload, trigger=ctx.trigger,
                   greeting=ctx.env.GREETING)
            return {"ok": True, "payload": event.payload}
        """,
    "tasks/boom.py": """
        from taskpack import define_task

        @define_task
        async def run(event):
            raise RuntimeError("boom went the task")
        """,
    "tasks/sync_job.py": """
        import threading

        from recorder import record
        from taskpack import define_task

        @define_task
        def run(event):
            record(task="sync_job", payload=event.payload,
                   thread=threading.current_thread().name)
            return "sync done"
        """,
    "tasks/later.py": """
        import asyncio

        from recorder import record
        from taskpack import define_task

        @define_task
        async def run(event):
            async def afterwards():
                await asyncio.sleep(0.02)
                record(task="later:afterwards", payload=event.payload)
                return "afterwards done"

            event.context.wait_until(afterwards())
            return "later returned"
        """,
}


def test_failures_parallel_tasks_wait_until_and_the_guarded_api(
    make_project: MakeProject, run_worker: RunWorker
) -> None:
    root = make_project(PROJECT)
    out = build(root, preset="cloudflare_module").output
    every_five, sundays = emitted_crons(out)
    assert sundays == "0 0 * * SUN"
    token = "s3cret-token"
    env = {"GREETING": "hello from env", "TASKPACK_TASKS_TOKEN": token}
    auth = {"authorization": f"Bearer {token}"}
    api = "https://worker.example/_nitro/tasks"
    calls: list[dict[str, Any]] = [
        {"kind": "scheduled", "cron": every_five, "scheduledTime": BASE_TIME},
        {
            "kind": "scheduled",
            "cron": sundays,
            "scheduledTime": BASE_TIME + 1,
            "controllerOnly": True,
        },
        {"kind": "fetch", "url": api},
        {"kind": "fetch", "url": api, "headers": {"authorization": "Bearer wrong"}},
        {"kind": "fetch", "url": api, "headers": auth},
        {
            "kind": "fetch",
            "method": "POST",
            "url": f"{api}/ok?from=query&n=1",
            "headers": {**auth, "content-type": "application/json"},
            "body": json.dumps({"payload": {"n": 2}}),
        },
        {"kind": "fetch", "url": f"{api}/boom", "headers": auth},
        {"kind": "fetch", "url": f"{api}/missing", "headers": auth},
        {"kind": "fetch", "url": "https://worker.example/", "headers": auth},
        {"kind": "fetch", "url": api, "headers": auth, "env": {"GREETING": "no token"}},
    ]
    result = run_worker(
        out / "src", calls, env=env, pythonEnv={"RECORD_FILE": RECORD}, collect=[RECORD]
    )
    assert result["import"]["ok"], result["import"]
    (tick, sunday, anonymous, wrong, listing, run_ok, run_boom, missing, other, unset) = result[
        "calls"
    ]

    # The failing task is logged with its name; its siblings all ran, in parallel
    # (later's background work finished after the batch), with the fire time.
    assert tick["waitUntil"][0] == {
        "status": "fulfilled",
        "value": {"ok": "ok", "boom": "error", "sync_job": "ok", "later": "ok"},
    }
    # The task's own context.wait_until went to ctx.waitUntil too.
    assert tick["waitUntil"][1] == {"status": "fulfilled", "value": "afterwards done"}
    stderr = lines(tick, "stderr")
    assert any(f' run: task=boom trigger="schedule:{every_five}" outcome=error attempts=1 '
               in line and 'error="RuntimeError: boom went the task"' in line for line in stderr)
    assert "    RuntimeError: boom went the task" in stderr  # its traceback follows
    got = {r["task"]: r for r in records(tick)}
    payload = {"scheduledTime": BASE_TIME}
    assert got["ok"] == {
        "task": "ok",
        "payload": payload,
        "trigger": f"schedule:{every_five}",
        "greeting": "hello from env",
    }
    assert got["sync_job"] == {"task": "sync_job", "payload": payload, "thread": "MainThread"}
    assert got["later:afterwards"] == {"task": "later:afterwards", "payload": payload}
    assert [r["task"] for r in records(sunday)] == ["ok"]
    assert records(sunday)[0]["payload"] == {"scheduledTime": BASE_TIME + 1}

    # The API needs the bearer token from the Worker secret.
    for refused in (anonymous, wrong):
        assert refused["response"]["status"] == 401
    assert listing["response"]["status"] == 200
    assert json.loads(listing["response"]["body"])["tasks"]["ok"] == {
        "description": "Records what it got"
    }
    assert run_ok["response"]["status"] == 200
    assert json.loads(run_ok["response"]["body"]) == {
        "ok": True,
        "payload": {"from": "query", "n": 2},
    }
    assert records(run_ok)[0]["trigger"] == "http"
    assert run_boom["response"]["status"] == 500
    assert json.loads(run_boom["response"]["body"])["message"] == "boom went the task"
    assert missing["response"]["status"] == 404
    assert other["response"]["status"] == 404
    # No secret set: fail closed, saying what to do.
    assert unset["response"]["status"] == 500
    assert "TASKPACK_TASKS_TOKEN is not set" in json.loads(unset["response"]["body"])["message"]
