"""The ``vercel`` preset end to end: ``taskpack build --preset vercel`` as a user
runs it, the real ``vercel build`` on its output, and the built function
over real HTTP (uvicorn in a fresh Python 3.12 venv installed from the
output's requirements.txt, called as Vercel Cron calls it).

Vercel itself cannot run here: the cron requests are made per Vercel's
documented contract (GET, ``user-agent: vercel-cron/1.0``,
``x-vercel-cron-schedule``, ``Authorization: Bearer $CRON_SECRET``).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taskpack.layout import PROJECT_DIR
from taskpack.vercel import cron_path
from tests.helpers import copy_example, write_files
from tests.vercel.conftest import CACHE, VercelTools, write_project_json

TASKPACK = Path(sys.executable).parent / "taskpack"
SECRET = "cron-secret-for-tests-0123456789"


def taskpack_build(root: Path, output: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TASKPACK), "build", "--preset", "vercel", "--root", str(root),
         "--output", str(output), *extra],
        capture_output=True, text=True, timeout=120,
    )


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def basic_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``examples/basic`` built with the vercel preset (shared, read-only)."""
    base = tmp_path_factory.mktemp("basic")
    root = copy_example(base / "project")
    out = base / "out"
    proc = taskpack_build(root, out)
    assert proc.returncode == 0, proc.stderr
    assert "more often than once a day" in proc.stderr  # "* * * * *" and "0 * * * *"
    return out


# -- the output -----------------------------------------------------------------


def test_vercel_json_has_one_cron_per_schedule_in_vercel_dialect(basic_build: Path) -> None:
    config = json.loads((basic_build / "vercel.json").read_text())
    schedules = ["* * * * *", "0 * * * *", "0 6 * * 1-5"]
    assert config["crons"] == [{"path": cron_path(s), "schedule": s} for s in schedules]
    assert len({c["path"] for c in config["crons"]}) == 3
    assert config["rewrites"] == [
        {"source": "/_taskpack/cron/(.*)", "destination": "/api/index"}
    ]
    assert config["functions"] == {"api/index.py": {"maxDuration": 300}}
    assert (basic_build / ".python-version").read_text() == "3.12\n"
    entry = (basic_build / "api" / "index.py").read_text()
    assert "'0 6 * * 1-5', ('report:daily', 'cms:update')" in entry
    assert "tasks_api=False" in entry and "/_nitro/tasks" not in entry
    record = json.loads((basic_build / "taskpack.json").read_text())
    assert record["preset"] == "vercel"
    assert "api/index.py" in record["files"] and "vercel.json" in record["files"]


def test_real_vercel_build(basic_build: Path, vercel_tools: VercelTools, tmp_path: Path) -> None:
    project = tmp_path / "deploy"
    shutil.copytree(basic_build, project)
    write_project_json(project)

    proc = vercel_tools.build(project, tmp_path / "home")

    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    output = project / ".vercel" / "output"
    config = json.loads((output / "config.json").read_text())
    ours = json.loads((basic_build / "vercel.json").read_text())["crons"]
    assert config["crons"] == ours
    rewrites = [r["src"] for r in config["routes"] if r.get("dest") == "/api/index"]
    assert rewrites == ["^/_taskpack/cron(?:/(.*))$"]
    function = output / "functions" / "api" / "index.func"
    vc_config = json.loads((function / ".vc-config.json").read_text())
    assert vc_config["runtime"] == "python3.12"
    assert vc_config["maxDuration"] == 300
    bundled = set(vc_config["filePathMap"])
    assert {"api/index.py", "taskpack/vercel.py", "taskpack_manifest.py",
            f"{PROJECT_DIR}/tasks/cms/update.py", f"{PROJECT_DIR}/jobs/report.py"} <= bundled
    # The task sources are in the function only, never served as static files.
    static = sorted(p.relative_to(output / "static").as_posix()
                    for p in (output / "static").rglob("*") if p.is_file())
    assert static == [".gitkeep"]


# -- the function over real HTTP ----------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def function_venv(basic_build: Path, vercel_tools: VercelTools,
                  tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh Python 3.12 venv (Vercel's default runtime) with the output's
    requirements.txt and uvicorn (Vercel's runtime serves ASGI with it)."""
    venv = tmp_path_factory.mktemp("venv") / "venv"
    uv = str(vercel_tools.path_dir / "uv")
    env = {**os.environ, "UV_CACHE_DIR": str(CACHE / "uv"),
           "UV_PYTHON_DOWNLOADS": "never"}
    subprocess.run([uv, "venv", "--quiet", "--python", str(vercel_tools.path_dir / "python3.12"),
                    str(venv)], check=True, env=env, timeout=120)
    subprocess.run([uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"),
                    "-r", str(basic_build / "requirements.txt"), "uvicorn"],
                   check=True, env=env, timeout=300)
    return venv


class Function:
    """``api/index.py``'s ``app`` under uvicorn, from the output folder."""

    def __init__(self, venv: Path, out: Path, env: dict[str, str], record: Path) -> None:
        self.port = free_port()
        self.record = record
        self.proc = subprocess.Popen(
            [str(venv / "bin" / "python"), "-m", "uvicorn", "api.index:app",
             "--host", "127.0.0.1", "--port", str(self.port), "--app-dir", str(out)],
            cwd=out, env={"PATH": os.environ["PATH"], "TASKPACK_EXAMPLE_RECORD": str(record),
                          **env},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.proc.communicate()[0]
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("uvicorn did not start")

    def get(self, path: str, headers: dict[str, str]) -> tuple[int, Any]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def runs(self) -> list[dict[str, Any]]:
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines()]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=15)


def cron_request(schedule: str, secret: str | None) -> dict[str, str]:
    headers = {"user-agent": "vercel-cron/1.0", "x-vercel-cron-schedule": schedule}
    if secret is not None:
        headers["authorization"] = f"Bearer {secret}"
    return headers


@pytest.fixture
def function(function_venv: Path, basic_build: Path, tmp_path: Path) -> Iterator[Function]:
    served = Function(function_venv, basic_build, {"CRON_SECRET": SECRET},
                      tmp_path / "runs.jsonl")
    yield served
    served.stop()


def test_cron_with_the_right_secret_runs_the_tasks(function: Function) -> None:
    path = cron_path("0 6 * * 1-5")
    before = int(time.time() * 1000)
    status, body = function.get(path, cron_request("0 6 * * 1-5", SECRET))
    assert (status, body) == (200, {"success": True,
                                    "tasks": {"report:daily": "ok", "cms:update": "ok"}})
    time.sleep(0.01)
    status, _ = function.get(path, cron_request("0 6 * * 1-5", SECRET))
    assert status == 200
    runs = function.runs()
    assert sorted(r["task"] for r in runs) == ["cms:update", "cms:update",
                                               "report:daily", "report:daily"]
    times = sorted({r["payload"]["scheduledTime"] for r in runs})
    assert len(times) == 2 and before <= times[0] < times[1] <= int(time.time() * 1000)


def test_cron_with_a_wrong_or_missing_secret_is_401(function: Function) -> None:
    path = cron_path("0 * * * *")
    for secret in ("wrong-secret", None):
        status, body = function.get(path, cron_request("0 * * * *", secret))
        assert (status, body["statusCode"]) == (401, 401)
    assert function.runs() == []


def test_cron_schedule_header_mismatch_is_400(function: Function) -> None:
    status, body = function.get(cron_path("0 * * * *"), cron_request("0 6 * * 1-5", SECRET))
    assert status == 400 and "does not match" in body["message"]
    assert function.runs() == []


def test_task_api_is_not_served(function: Function) -> None:
    status, _ = function.get("/_nitro/tasks", {"authorization": f"Bearer {SECRET}"})
    assert status == 404


def test_cron_secret_unset_fails_closed(function_venv: Path, basic_build: Path,
                                        tmp_path: Path) -> None:
    served = Function(function_venv, basic_build, {}, tmp_path / "runs.jsonl")
    try:
        status, body = served.get(cron_path("0 * * * *"), cron_request("0 * * * *", SECRET))
    finally:
        served.stop()
    assert status == 500 and "CRON_SECRET is not set" in body["message"]
    assert served.runs() == []


def test_task_api_when_enabled(function_venv: Path, tmp_path: Path) -> None:
    root = copy_example(tmp_path / "project")
    config = root / "taskpack.toml"
    config.write_text(config.read_text() + "\n[vercel]\ntasks_api = true\n")
    out = tmp_path / "out"
    assert taskpack_build(root, out).returncode == 0
    served = Function(function_venv, out, {"CRON_SECRET": SECRET,
                                           "TASKPACK_TASKS_TOKEN": "task-token"},
                      tmp_path / "runs.jsonl")
    try:
        assert served.get("/_nitro/tasks/echo:payload?x=1", {})[0] == 401
        assert served.get("/_nitro/tasks/echo:payload?x=1",
                          {"authorization": f"Bearer {SECRET}"})[0] == 401
        status, body = served.get("/_nitro/tasks/echo:payload?x=1",
                                  {"authorization": "Bearer task-token"})
        assert (status, body) == (200, {"result": {"x": "1"}})
        status, body = served.get(cron_path("0 * * * *"), cron_request("0 * * * *", SECRET))
        assert (status, body) == (200, {"success": True, "tasks": {"db:migrate": "ok"}})
    finally:
        served.stop()


# -- dialect, config merge, plan checks --------------------------------------------


def project_with(tmp_path: Path, crons: dict[str, str], extra: str = "",
                 files: dict[str, str] | None = None) -> Path:
    table = "".join(f'"{cron}" = "{task}"\n' for cron, task in crons.items())
    return write_files(tmp_path / "project", {
        "taskpack.toml": f"{extra}\n[scheduled_tasks]\n{table}",
        "tasks/a.py": "from taskpack import define_task\n\n"
                      "@define_task\ndef run(event):\n    return 1\n",
        **(files or {}),
    })


def test_weekday_names_become_digits(tmp_path: Path) -> None:
    root = project_with(tmp_path, {"0 12 * * MON-FRI": "a"})
    proc = taskpack_build(root, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    crons = json.loads((tmp_path / "out" / "vercel.json").read_text())["crons"]
    assert crons == [{"path": cron_path("0 12 * * 1-5"), "schedule": "0 12 * * 1-5"}]
    assert proc.stderr == ""  # daily: no plan warning


def test_last_day_of_month_fails_the_build(tmp_path: Path) -> None:
    root = project_with(tmp_path, {"0 0 L * *": "a"})
    out = tmp_path / "out"
    proc = taskpack_build(root, out)
    assert proc.returncode == 2
    line = proc.stderr.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in line
    assert 'scheduled_tasks."0 0 L * *"' in line
    assert "Vercel Cron Jobs do not support L, W or #" in line
    assert not out.exists()


def test_non_utc_timezone_fails_the_build(tmp_path: Path) -> None:
    root = project_with(tmp_path, {"0 12 * * *": "a"}, extra='timezone = "Europe/Berlin"')
    proc = taskpack_build(root, tmp_path / "out")
    assert proc.returncode == 2
    assert "taskpack.toml: timezone:" in proc.stderr and "UTC only" in proc.stderr


USER_VERCEL_JSON = {
    "$schema": "https://openapi.vercel.sh/vercel.json",
    "crons": [
        {"path": "/api/own-job", "schedule": "15 3 * * *"},
        {"path": "/_taskpack/cron/0123456789abcdef", "schedule": "0 1 * * *"},
    ],
    "headers": [{"source": "/(.*)", "headers": [{"key": "x-frame-options", "value": "DENY"}]}],
    "rewrites": [{"source": "/_nitro/tasks/:path*", "destination": "/api/index"},
                 {"source": "/old", "destination": "/new"}],
    "functions": {"api/index.py": {"memory": 1024, "maxDuration": 10}},
}


def test_user_vercel_json_is_merged_and_stable(tmp_path: Path) -> None:
    root = project_with(tmp_path, {"0 12 * * MON-FRI": "a"},
                        extra="[vercel]\nmax_duration = 120\n",
                        files={"vercel.json": json.dumps(USER_VERCEL_JSON, indent=2)})
    out = tmp_path / "out"
    assert taskpack_build(root, out).returncode == 0
    first = (out / "vercel.json").read_bytes()
    assert taskpack_build(root, out).returncode == 0
    assert (out / "vercel.json").read_bytes() == first

    merged = json.loads(first)
    assert list(merged)[:5] == ["$schema", "crons", "headers", "rewrites", "functions"]
    assert merged["headers"] == USER_VERCEL_JSON["headers"]
    assert merged["crons"] == [
        {"path": "/api/own-job", "schedule": "15 3 * * *"},
        {"path": cron_path("0 12 * * 1-5"), "schedule": "0 12 * * 1-5"},
    ]
    assert merged["rewrites"] == [
        {"source": "/_taskpack/cron/(.*)", "destination": "/api/index"},
        {"source": "/old", "destination": "/new"},
    ]
    assert merged["functions"] == {"api/index.py": {"memory": 1024, "maxDuration": 120}}

    # Feeding the output back as the user's file changes nothing.
    (root / "vercel.json").write_bytes(first)
    assert taskpack_build(root, out).returncode == 0
    assert (out / "vercel.json").read_bytes() == first


def test_options_and_project_link(tmp_path: Path) -> None:
    link = '{"projectId": "prj_x", "orgId": "team_x"}'
    root = project_with(tmp_path, {"0 12 * * *": "a"},
                        extra='[vercel]\ntasks_api = true\npython = "3.13"\n',
                        files={".vercel/project.json": link})
    out = tmp_path / "out"
    assert taskpack_build(root, out).returncode == 0
    assert (out / ".vercel" / "project.json").read_text() == link
    config = json.loads((out / "vercel.json").read_text())
    assert {"source": "/_nitro/tasks(/.*)?", "destination": "/api/index"} in config["rewrites"]
    assert "tasks_api=True" in (out / "api" / "index.py").read_text()
    assert (out / ".python-version").read_text() == "3.13\n"


def test_plan_checks(tmp_path: Path) -> None:
    many = {f"{minute} {hour} * * *": "a" for hour in range(5) for minute in range(21)}
    root = project_with(tmp_path / "many", many)
    proc = taskpack_build(root, tmp_path / "out1")
    assert proc.returncode == 2
    assert "105 distinct schedules" in proc.stderr and "at most 100" in proc.stderr

    few = {f"{n % 60} {n // 60} * * *": "a" for n in range(99)}
    own = {"crons": [{"path": f"/api/own{i}", "schedule": "0 3 * * *"} for i in range(2)]}
    root = project_with(tmp_path / "mixed", few, files={"vercel.json": json.dumps(own)})
    proc = taskpack_build(root, tmp_path / "out1b")
    assert proc.returncode == 2 and "99 distinct schedules plus 2 in vercel.json" in proc.stderr

    root = project_with(tmp_path / "routes", {"0 0 * * *": "a"},
                        files={"vercel.json": '{"routes": []}'})
    proc = taskpack_build(root, tmp_path / "out1c")
    assert proc.returncode == 2 and "vercel.json: routes:" in proc.stderr

    root = project_with(tmp_path / "long", {"0 0 * * *": "a"},
                        extra="[vercel]\nmax_duration = 900\n")
    proc = taskpack_build(root, tmp_path / "out2")
    assert proc.returncode == 2 and "vercel.max_duration" in proc.stderr

    root = project_with(tmp_path / "open", {"*/5 * * * *": "a"},
                        extra="[vercel]\nallow_unauthenticated_cron = true\n")
    proc = taskpack_build(root, tmp_path / "out3")
    assert proc.returncode == 0
    assert "Hobby" in proc.stderr and "allow_unauthenticated_cron" in proc.stderr
    assert "allow_unauthenticated_cron=True" in (tmp_path / "out3/api/index.py").read_text()


def test_deterministic_and_atomic(tmp_path: Path) -> None:
    root = copy_example(tmp_path / "project")
    one, two = tmp_path / "one", tmp_path / "two"
    assert taskpack_build(root, one).returncode == 0
    assert taskpack_build(root, two).returncode == 0
    assert tree(one) == tree(two)

    before = tree(one)
    config = root / "taskpack.toml"
    config.write_text(config.read_text() + '"0 0 L * *" = "db:migrate"\n')
    proc = taskpack_build(root, one)
    assert proc.returncode == 2
    assert tree(one) == before
