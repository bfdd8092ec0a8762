"""Building for the dashboard: ``[server] dashboard`` validation, the files
a bundle carries, the schedule details in the manifest."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from taskpack.layout import read_manifest
from taskpack.server import ServerConfigError, ServerOptions, token_from_env
from tests.helpers import copy_example

TASKPACK = str(Path(sys.executable).with_name("taskpack"))


def build(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TASKPACK, "build", "--root", str(root), "--output",
                           str(root / "out"), *args], capture_output=True, text=True)


def configured(tmp_path: Path, server: str) -> Path:
    root = copy_example(tmp_path / "project")
    config = root / "taskpack.toml"
    text = config.read_text().replace("[server]\ntasks_api = true\n", "")
    config.write_text(text + f"\n[server]\n{server}\n")
    return root


def test_dashboard_needs_the_task_api(tmp_path: Path) -> None:
    result = build(configured(tmp_path, "dashboard = true"))
    assert result.returncode == 2
    assert result.stderr.startswith("error: taskpack.toml: server.dashboard: the dashboard")
    assert "tasks_api = true" in result.stderr
    bad = build(configured(tmp_path / "again", 'dashboard = "yes"'))
    assert bad.returncode == 2 and "server.dashboard" in bad.stderr


def test_the_runtime_refuses_a_dashboard_without_token() -> None:
    with pytest.raises(ServerConfigError, match="tasks_api = true"):
        token_from_env(ServerOptions(dashboard=True), {})
    with pytest.raises(ServerConfigError, match="TASKPACK_TASKS_TOKEN"):
        token_from_env(ServerOptions(tasks_api=True, dashboard=True), {})


@pytest.mark.parametrize("preset", ["server", "server_cluster", "asgi"])
def test_bundle_with_dashboard(tmp_path: Path, preset: str) -> None:
    root = configured(tmp_path, "tasks_api = true\ndashboard = true")
    assert build(root, "--preset", preset).returncode == 0
    base = root / "out" / "server"
    for name in ("app.py", "api.py", "live.py", "runs.py", "static/index.html",
                 "static/app.js", "static/style.css"):
        assert (base / "taskpack" / "web" / name).is_file(), name
    for cached in base.glob("taskpack/**/__pycache__/*"):  # only the build's own bytecode
        assert cached.name.endswith(f".{sys.implementation.cache_tag}.pyc"), cached
        assert (cached.parent.parent / f"{cached.name.split('.')[0]}.py").is_file(), cached
    schedules = read_manifest(base)["schedules"]
    weekdays = next(s for s in schedules if s["cron"] == "0 6 * * MON-FRI")
    assert weekdays["description"] == "At 06:00 on Monday through Friday"
    vercel = next(d for d in weekdays["deployed"] if d["presets"] == ["vercel"])
    assert (vercel["ok"], vercel["cron"]) == (True, "0 6 * * 1-5")


def test_bundle_without_dashboard_has_no_web_files(tmp_path: Path) -> None:
    root = configured(tmp_path, "tasks_api = true")
    assert build(root).returncode == 0
    base = root / "out" / "server"
    assert not (base / "taskpack" / "web" / "static").exists()  # the page; jobs.py stays
    assert "deployed" not in read_manifest(base)["schedules"][0]
