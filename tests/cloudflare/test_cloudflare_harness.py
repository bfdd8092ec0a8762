"""The Pyodide harness and the wrangler install, proved on a hand-written Worker
(``minimal_worker/``) before the generated entry relies on them."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.cloudflare.conftest import WranglerRun

RunWorker = Callable[..., dict[str, Any]]
DryRun = Callable[..., WranglerRun]

MINIMAL = Path(__file__).resolve().parent / "minimal_worker"


def test_harness_runs_scheduled_and_fetch_in_pyodide(run_worker: RunWorker) -> None:
    result = run_worker(
        MINIMAL / "src",
        [
            {"kind": "scheduled", "cron": "0 12 * * MON-FRI", "scheduledTime": 1_764_158_400_000},
            {
                "kind": "fetch",
                "method": "POST",
                "url": "https://probe.example/path?q=1",
                "headers": {"x-test": "yes"},
                "body": '{"payload": {}}',
            },
        ],
        env={"SECRET": "s3cret"},
    )
    assert result["import"]["ok"], result["import"]
    scheduled, fetch = result["calls"]

    assert scheduled["returned"] == "handled"
    later, broken = scheduled["waitUntil"]
    # The awaitable outlived the handler: the stand-in patchWaitUntil copied it.
    assert later == {
        "status": "fulfilled",
        "value": {"cron": "0 12 * * MON-FRI", "scheduledTime": 1_764_158_400_000},
    }
    assert broken["status"] == "rejected"
    assert "background failed" in broken["reason"]["message"]
    assert [log["line"] for log in scheduled["logs"]] == [
        "scheduled 0 12 * * MON-FRI 1764158400000",
        "background done",
    ]

    assert fetch["response"]["status"] == 201
    assert fetch["response"]["headers"]["content-type"] == "application/json"
    assert json.loads(fetch["response"]["body"]) == {
        "method": "POST",
        "url": "https://probe.example/path?q=1",
        "x_test": "yes",
        "body": '{"payload": {}}',
        "secret": "s3cret",
    }


def test_harness_reports_import_errors(run_worker: RunWorker, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "entry.py").write_text("import does_not_exist\n")
    result = run_worker(src, [{"kind": "scheduled", "cron": "* * * * *", "scheduledTime": 0}])
    assert not result["import"]["ok"]
    assert "does_not_exist" in result["import"]["error"]["message"]
    assert result["calls"] == []


def test_wrangler_dry_run_offline(dry_run: DryRun, tmp_path: Path) -> None:
    project = tmp_path / "probe"
    shutil.copytree(MINIMAL, project)
    run = dry_run(project)
    assert run.returncode == 0, run.output
    assert "--dry-run: exiting now." in run.output
    assert (run.outdir / "entry.py").is_file()

    # wrangler really validates: without the python_workers flag it refuses.
    config = project / "wrangler.toml"
    config.write_text(config.read_text().replace('compatibility_flags = ["python_workers"]\n', ""))
    run = dry_run(project)
    assert run.returncode != 0
    assert "The `python_workers` compatibility flag is required" in run.output
