"""taskpack enqueue / jobs / worker on a project's SQLite store: output
shapes, bad input as one line with exit 2, and a real worker process."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner, Result

from taskpack.builder.cli import main
from tests.helpers import MakeProject

FILES = {
    "tasks/greet.py": '''
from taskpack import define_task

@define_task(retries=0)
def run(event):
    if event.payload.get("fail"):
        raise RuntimeError("asked to fail")
    return {"hello": event.payload.get("name", "world")}
''',
}


def cli(root: Path, *args: str) -> Result:
    return CliRunner().invoke(main, [*args, "--root", str(root)])


def test_enqueue_and_jobs_commands(make_project: MakeProject) -> None:
    root = make_project(FILES)
    added = cli(root, "enqueue", "greet", "--payload", '{"name": "ada"}', "--delay", "60")
    assert added.exit_code == 0, added.output
    job_id = added.output.strip()
    assert len(job_id) >= 16 and "\n" not in job_id
    as_json = json.loads(cli(root, "enqueue", "greet", "--key", "k", "--json").output)
    assert as_json["status"] == "pending" and as_json["key"] == "k"

    listed = cli(root, "jobs", "list")
    assert listed.exit_code == 0 and job_id in listed.output and "pending" in listed.output
    rows = json.loads(cli(root, "jobs", "list", "--json", "--status", "pending").output)
    assert {row["id"] for row in rows} == {job_id, as_json["id"]}
    shown = cli(root, "jobs", "show", job_id)
    assert "payload:" in shown.output and '"ada"' in shown.output
    assert json.loads(cli(root, "jobs", "show", job_id, "--json").output)["id"] == job_id

    cancelled = cli(root, "jobs", "cancel", job_id)
    assert cancelled.exit_code == 0 and cancelled.output.strip() == f"{job_id} cancelled"
    retried = json.loads(cli(root, "jobs", "retry", job_id, "--json").output)
    assert retried["status"] == "pending"


def test_bad_input_is_one_line_and_exit_2(make_project: MakeProject) -> None:
    root = make_project(FILES)
    job_id = cli(root, "enqueue", "greet").output.strip()
    for args, says in (
        (("enqueue", "nope"), "Task `nope` is not available!"),
        (("enqueue", "greet", "--payload", "[1]"), "--payload: expected a JSON object"),
        (("enqueue", "greet", "--payload", "{"), "--payload: invalid JSON"),
        (("jobs", "show", "nope"), "JOB_ID: no job 'nope'"),
        (("jobs", "retry", job_id), "only failed or cancelled jobs can be retried"),
    ):
        result = cli(root, *args)
        assert result.exit_code == 2, (args, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], lines


def test_worker_runs_jobs_and_stops_on_sigterm(make_project: MakeProject) -> None:
    root = make_project(FILES)
    good = cli(root, "enqueue", "greet", "--payload", '{"name": "bo"}').output.strip()
    bad = cli(root, "enqueue", "greet", "--payload", '{"fail": true}').output.strip()
    taskpack = str(Path(sys.executable).with_name("taskpack"))
    worker = subprocess.Popen([taskpack, "worker", "--root", str(root), "--concurrency", "2"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            rows = {row["id"]: row for row in
                    json.loads(cli(root, "jobs", "list", "--json").output)}
            if rows[good]["status"] == "succeeded" and rows[bad]["status"] == "failed":
                break
            time.sleep(0.2)
        assert rows[good]["result"] == {"hello": "bo"}
        assert rows[bad]["last_error"] == "RuntimeError: asked to fail"
    finally:
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=30)
    assert worker.returncode == 0, output
    assert "taskpack worker: stopped" in output
