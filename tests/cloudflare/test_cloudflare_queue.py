"""Jobs on Cloudflare Queues, in real Pyodide with Cloudflare's real SDK
wheel (``harness.mjs``): ``enqueue_task`` inside the Worker sends to the
producer binding, the Worker's ``queue`` handler runs each message's job and
acks, retries with the task's backoff, or dead-letters it. The Queue itself
cannot run here: the harness's ``WorkerQueue``/``MessageBatch`` follow
Cloudflare's documented JavaScript API. The merged wrangler config is
checked by ``wrangler deploy --dry-run`` (test_cloudflare_wrangler.py style)."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from taskpack.builder.build import build
from taskpack.builder.errors import ConfigError
from tests.helpers import MakeProject

PROJECT = {
    "taskpack.toml": """
preset = "cloudflare_module"

[cloudflare]
name = "jobs-worker"
queue = "taskpack-jobs"
dead_letter_queue = "taskpack-dead"

[scheduled_tasks]
"0 * * * *" = "plan"
""",
    "tasks/plan.py": """
from taskpack import define_task, enqueue_task

@define_task
async def run(event):
    job = await enqueue_task("work", {"n": 1}, delay=30)
    later = await enqueue_task("work", {"n": 2})
    try:
        await enqueue_task("work", {"n": 3}, key="k")
    except ValueError as exc:
        refused = str(exc)
    return {"jobs": [job.id, later.id], "refused": refused}
""",
    "tasks/work.py": """
from taskpack import RetryPolicy, define_task

@define_task(retries=RetryPolicy(max_attempts=3, min_delay=4, max_delay=4, jitter=False))
def run(event):
    if event.payload["n"] == 2:
        raise RuntimeError(f"attempt {event.job.attempt} of {event.job.max_attempts} failed")
    return {"job": event.job.id, "attempt": event.job.attempt}
""",
}

BINDINGS = ["TASKPACK_JOBS", "TASKPACK_DEAD_LETTERS"]


def test_config_has_producers_and_a_consumer(make_project: MakeProject) -> None:
    out = build(make_project(PROJECT)).output
    config = tomllib.loads((out / "wrangler.toml").read_text())
    assert config["queues"]["producers"] == [
        {"queue": "taskpack-jobs", "binding": "TASKPACK_JOBS"},
        {"queue": "taskpack-dead", "binding": "TASKPACK_DEAD_LETTERS"},
    ]
    assert config["queues"]["consumers"] == [
        {"queue": "taskpack-jobs", "max_retries": 100, "dead_letter_queue": "taskpack-dead"}]


def test_user_queues_are_kept_and_ours_replaced(make_project: MakeProject) -> None:
    files = dict(PROJECT)
    files["wrangler.toml"] = """
name = "jobs-worker"

[[queues.producers]]
queue = "emails"
binding = "EMAILS"

[[queues.producers]]
queue = "old"
binding = "TASKPACK_JOBS"
"""
    result = build(make_project(files))
    config = tomllib.loads((result.output / "wrangler.toml").read_text())
    assert [p["binding"] for p in config["queues"]["producers"]] == \
        ["EMAILS", "TASKPACK_JOBS", "TASKPACK_DEAD_LETTERS"]
    assert any("queues.producers: replaced" in w for w in result.warnings)


def test_bad_queue_settings_are_refused(make_project: MakeProject) -> None:
    files = dict(PROJECT)
    files["taskpack.toml"] = PROJECT["taskpack.toml"].replace(
        'queue = "taskpack-jobs"\n', "")
    with pytest.raises(ConfigError, match=r"cloudflare\.dead_letter_queue: needs"):
        build(make_project(files))
    files["taskpack.toml"] = PROJECT["taskpack.toml"].replace("taskpack-jobs", "Bad Name")
    with pytest.raises(ConfigError, match=r"cloudflare\.queue: 'Bad Name' is not a queue name"):
        build(make_project(files))


def test_enqueue_then_consume_with_retries_and_dead_letters(
        make_project: MakeProject, run_worker: Any) -> None:
    out = build(make_project(PROJECT)).output
    first = run_worker(out / "src", [{"kind": "scheduled", "cron": "0 * * * *",
                                      "scheduledTime": 1_764_158_400_000}], queues=BINDINGS)
    call = first["calls"][0]
    assert "error" not in call, call
    sent = call["sent"]
    assert [s["binding"] for s in sent] == ["TASKPACK_JOBS", "TASKPACK_JOBS"]
    assert sent[0]["options"] == {"delaySeconds": 30} and sent[1]["options"] is None
    bodies = [s["body"] for s in sent]
    assert [b["payload"] for b in bodies] == [{"n": 1}, {"n": 2}]
    assert all(b["kind"] == "taskpack.job" and b["max_attempts"] == 3 for b in bodies)

    def message(i: int, body: dict[str, Any], attempts: int) -> dict[str, Any]:
        return {"id": f"m{i}", "body": body, "attempts": attempts}

    second = run_worker(out / "src", [
        {"kind": "queue", "queue": "taskpack-jobs",
         "messages": [message(0, bodies[0], 1), message(1, bodies[1], 1)]},
        {"kind": "queue", "queue": "taskpack-jobs",
         "messages": [message(1, bodies[1], 3), message(2, {"hello": 1}, 1)]},
    ], queues=BINDINGS)
    ran, last = second["calls"]
    assert "error" not in ran and "error" not in last, (ran, last)
    assert ran["messages"] == [
        {"id": "m0", "action": "ack", "options": None},
        {"id": "m1", "action": "retry", "options": {"delaySeconds": 4}},
    ]
    assert [m["action"] for m in last["messages"]] == ["ack", "ack"]
    assert any("is not a taskpack job; acked and dropped" in log["line"]
               for log in last["logs"])
    (dead,) = last["sent"]
    assert dead["binding"] == "TASKPACK_DEAD_LETTERS"
    assert dead["body"]["id"] == bodies[1]["id"] and dead["body"]["attempts"] == 3
    assert dead["body"]["error"] == "RuntimeError: attempt 3 of 3 failed"
    assert "Traceback" in dead["body"]["traceback"]


def test_wrangler_accepts_the_merged_config(make_project: MakeProject, dry_run: Any) -> None:
    out = build(make_project(PROJECT)).output
    run = dry_run(out)
    assert run.returncode == 0, run.output
    assert "--dry-run: exiting now." in run.output
    assert "TASKPACK_JOBS" in run.output and "taskpack-jobs" in run.output
