"""Preset ``kubernetes``: schedules, manifests, the Dockerfile, the CronJob entry.

No cluster and no Docker engine run here. What is tested: every manifest
against the Kubernetes JSON schemas offline (``kubernetes-validate
--strict``, for the oldest version with ``timeZone`` GA, 1.27, and the
newest it ships, 1.37) — structure only, so schedules (our
robfig-compatible checker), time-zone names and enum values are checked
here too; the Dockerfile's structure (pinned base, non-root, requirements
before code, a health check, no secrets); and what its steps do, run in a
fresh virtualenv (install the requirements, start the command, hit
``/_health``), plus each CronJob's command with the environment the
downward API gives it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import venv
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import kubernetes_validate
import pytest
import yaml
from click.testing import CliRunner

from taskpack.builder.build import build
from taskpack.builder.cli import main
from taskpack.builder.dialects import to_kubernetes
from taskpack.builder.kube_cron import check_kubernetes_schedule
from taskpack.cron import CronError, CronExpr
from taskpack.platforms.kubernetes import FireError, latest_fire, scheduled_time
from tests.helpers import FAILING, RECORDER, url_runs, write_files
from tests.servers import ServerProcess, clean_env, free_port, wait_for
from tests.test_cron import table_rows

KUBE_VERSIONS = ("1.27.0", "1.37.0")

# -- the controller's dialect ----------------------------------------------------------


@pytest.mark.parametrize("text", [
    "* * * * *", "*/15 * * * *", "0 9-17/2 * * *", "0 0 1 jan,JUL *", "0 12 * * MON-fri",
    "0 0 * * 0,6", "5/15 * * * *", "0 0 ? * 1", "@daily", "@annually", "0 0 1-31 * 0-6",
])
def test_checker_accepts_what_robfig_parses(text: str) -> None:
    check_kubernetes_schedule(text)


@pytest.mark.parametrize(("text", "reason"), [
    ("0 0 * * 7", "end of range (7) above maximum (6)"),
    ("0 0 L * *", "failed to parse int from 'L'"),
    ("0 0 15W * *", "failed to parse int from '15W'"),
    ("0 0 * * 1#2", "failed to parse int from '1#2'"),
    ("CRON_TZ=UTC 0 0 * * *", "cannot use TZ or CRON_TZ in schedule, use timeZone field"),
    ("TZ=Europe/Berlin 0 0 * * *", "cannot use TZ or CRON_TZ in schedule"),
    ("0 0 0 * * *", "expected exactly 5 fields, found 6"),
    ("0 0 0 * *", "beginning of range (0) below minimum (1)"),
    ("0 24 * * *", "end of range (24) above maximum (23)"),
    ("0 0 * 5-2 *", "beginning of range (5) beyond end of range (2)"),
    ("*/0 * * * *", "step of range should be a positive number"),
    ("@reboot", "unrecognized descriptor"),
])
def test_checker_refuses_what_the_api_server_refuses(text: str, reason: str) -> None:
    with pytest.raises(CronError, match=re.escape(reason)):
        check_kubernetes_schedule(text)


@pytest.mark.parametrize("row", table_rows(), ids=lambda row: row[0])
def test_translation_keeps_the_meaning_or_refuses(row: list[str]) -> None:
    try:
        expr = CronExpr.parse(row[0])
    except CronError:
        return
    try:
        schedule = to_kubernetes(expr)
    except CronError as exc:
        assert expr.has_seconds or expr.uses_extensions, exc
        return
    check_kubernetes_schedule(schedule)
    assert CronExpr.parse(schedule) == expr, schedule
    dom, dow = schedule.split()[2], schedule.split()[4]
    # robfig ORs the day fields only when neither is '*': the same as croner
    assert (dom != "*" and dow != "*") == expr.both_days_restricted


@pytest.mark.parametrize(("written", "deployed"), [
    ("0 12 * * MON-FRI", "0 12 * * 1-5"),
    ("0 0 * * 7", "0 0 * * 0"),
    ("0 0 * * 5-7", "0 0 * * 0,5-6"),
    ("0 0 1 * MON", "0 0 1 * 1"),
    ("@weekly", "0 0 * * 0"),
])
def test_translations(written: str, deployed: str) -> None:
    assert to_kubernetes(CronExpr.parse(written)) == deployed


def test_cron_command() -> None:
    ok = CliRunner().invoke(main, ["cron", "0 12 * * MON-FRI", "--preset", "k8s", "-n", "1"])
    assert "k8s: deploys '0 12 * * 1-5' (Kubernetes CronJobs)" in ok.stdout
    refused = CliRunner().invoke(main, ["cron", "0 0 L * *", "--preset", "kubernetes"])
    assert refused.exit_code == 2
    assert refused.stderr.strip() == (
        "error: --preset kubernetes: Kubernetes CronJobs do not support L, W or #. Schedule a "
        "daily job and check the date in the task, or use [kubernetes] scheduler = "
        "\"in-process\".")


# -- the build ----------------------------------------------------------------------------



def k8s_project(root: Path, *, extra: str = "", schedules: str = "") -> Path:
    return write_files(root, {
        "tasks/record.py": RECORDER,
        "tasks/fail.py": FAILING,
        "taskpack.toml": f"""
            timezone = "Europe/Berlin"
            [scheduled_tasks]
            "0 6 * * MON-FRI" = "record"
            "0 6 * * 1-5" = "fail"
            "*/5 * * * *" = "record"
            {schedules}
            [server]
            tasks_api = true
            [kubernetes]
            image = "registry.example.com/shop:1.2.3"
            namespace = "jobs"
            {extra}
        """,
    })


def build_cli(root: Path) -> Any:
    return CliRunner().invoke(main, ["build", "--root", str(root), "--preset", "k8s"])


def manifests(out: Path) -> list[dict[str, Any]]:
    return [doc for path in sorted((out / "k8s").glob("*.yaml"))
            for doc in yaml.safe_load_all(path.read_text())]


def check_values(doc: dict[str, Any]) -> None:
    """What the schemas leave open: names, schedules, zones, enum values."""
    name = doc["metadata"]["name"]
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name) and len(name) <= 63
    if doc["kind"] != "CronJob":
        return
    spec = doc["spec"]
    assert len(name) <= 52
    check_kubernetes_schedule(spec["schedule"])
    ZoneInfo(spec["timeZone"])
    assert spec["timeZone"] != "Local"
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["startingDeadlineSeconds"] >= 10
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["restartPolicy"] in ("Never", "OnFailure")


def test_manifests_validate(tmp_path: Path) -> None:
    root = k8s_project(tmp_path / "shop")
    result = build_cli(root)
    assert result.exit_code == 0, result.output
    docs = manifests(root / ".output")
    kinds = sorted(doc["kind"] for doc in docs)
    assert kinds == ["CronJob", "CronJob", "Deployment", "Service"]  # 1-5 merged into MON-FRI
    for doc in docs:
        for version in KUBE_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)
        check_values(doc)
        assert doc["metadata"]["namespace"] == "jobs"
    jobs = {doc["spec"]["schedule"]: doc for doc in docs if doc["kind"] == "CronJob"}
    assert set(jobs) == {"0 6 * * 1-5", "*/5 * * * *"}
    weekday = jobs["0 6 * * 1-5"]
    assert weekday["spec"]["timeZone"] == "Europe/Berlin"
    container = weekday["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["python", "-m", "taskpack.platforms.kubernetes",
                                    "0 6 * * 1-5"]
    assert container["env"] == [{"name": "TASKPACK_JOB_NAME", "valueFrom": {"fieldRef": {
        "fieldPath": "metadata.labels['batch.kubernetes.io/job-name']"}}}]
    assert container["envFrom"] == [{"secretRef": {"name": "shop-env", "optional": True}}]
    deployment = next(doc for doc in docs if doc["kind"] == "Deployment")
    web = deployment["spec"]["template"]["spec"]["containers"][0]
    assert web["image"] == "registry.example.com/shop:1.2.3"
    assert {"name": "TASKPACK_SCHEDULER", "value": "off"} in web["env"]
    assert {"name": "TASKPACK_ROLE", "value": "all"} in web["env"]
    assert web["readinessProbe"]["httpGet"] == {"path": "/_health", "port": "http"}
    assert web["livenessProbe"]["httpGet"] == {"path": "/_health", "port": "http"}
    assert web["resources"]["requests"] and web["resources"]["limits"]
    text = (root / ".output" / "k8s" / "deployment.yaml").read_text()
    assert "&id" not in text and "*id" not in text  # no YAML aliases
    record = json.loads((root / ".output" / "taskpack.json").read_text())
    assert sorted(s["cron"] for s in record["schedules"]) == ["*/5 * * * *", "0 6 * * 1-5"]


def test_kubernetes_validate_catches_a_misspelt_field(tmp_path: Path) -> None:
    root = k8s_project(tmp_path / "shop")
    assert build_cli(root).exit_code == 0
    job = next(doc for doc in manifests(root / ".output") if doc["kind"] == "CronJob")
    job["spec"]["timezone"] = job["spec"].pop("timeZone")
    with pytest.raises(kubernetes_validate.ValidationError, match="timezone"):
        kubernetes_validate.validate(job, KUBE_VERSIONS[-1], strict=True)


def test_default_name_is_a_service_name(tmp_path: Path) -> None:
    root = k8s_project(tmp_path / "2024 Shop!", extra="")
    assert build_cli(root).exit_code == 0
    names = {doc["metadata"]["name"] for doc in manifests(root / ".output")}
    assert "taskpack-2024-shop" in names


def test_output_is_deterministic(tmp_path: Path) -> None:
    root = k8s_project(tmp_path / "shop")
    first = build(root, preset="k8s", output=tmp_path / "a").record
    second = build(root, preset="kubernetes", output=tmp_path / "b").record
    assert first == second


def test_worker_role_and_in_process_scheduling(tmp_path: Path) -> None:
    extra = 'worker_replicas = 2\nreplicas = 3\nscheduler = "in-process"'
    result = build_cli(k8s_project(tmp_path / "alone", extra=extra))
    assert result.exit_code == 2  # the claims and the jobs need one shared store
    assert result.stderr.startswith(
        'error: taskpack.toml: kubernetes.scheduler: scheduler = "in-process" (every replica '
        "schedules; each fire is claimed once) needs one store shared by every pod")
    root = k8s_project(tmp_path / "shop", extra=extra + '\n[store]\ndriver = "postgres"')
    result = build_cli(root)
    assert result.exit_code == 0, result.output
    assert "psycopg" in (root / ".output" / "server" / "requirements.txt").read_text()
    docs = manifests(root / ".output")
    assert sorted(doc["kind"] for doc in docs) == ["Deployment", "Deployment", "Service"]
    for doc in docs:
        kubernetes_validate.validate(doc, KUBE_VERSIONS[-1], strict=True)
    roles = {doc["metadata"]["name"]: (doc["spec"]["replicas"],
                                       doc["spec"]["template"]["spec"]["containers"][0]["env"])
             for doc in docs if doc["kind"] == "Deployment"}
    assert roles == {"shop-web": (3, [{"name": "TASKPACK_ROLE", "value": "web"}]),
                     "shop-worker": (2, [{"name": "TASKPACK_ROLE", "value": "worker"}])}
    record = json.loads((root / ".output" / "taskpack.json").read_text())
    assert sorted(s["cron"] for s in record["schedules"]) == ["*/5 * * * *", "0 6 * * 1-5",
                                                              "0 6 * * MON-FRI"]


@pytest.mark.parametrize(("schedules", "extra", "line"), [
    ('"0 0 L * *" = "record"', "",
     'error: taskpack.toml: scheduled_tasks."0 0 L * *": Kubernetes CronJobs do not support L'),
    ('"*/30 * * * * *" = "record"', "",
     'error: taskpack.toml: scheduled_tasks."*/30 * * * * *": Kubernetes CronJobs run at '
     "minute resolution"),
    ("", 'schedulr = "cronjob"',
     "error: taskpack.toml: kubernetes.schedulr: unknown key (did you mean 'scheduler'?)"),
    ("", 'scheduler = "cron"',
     "error: taskpack.toml: kubernetes.scheduler: expected one of 'cronjob', 'in-process', "
     "got 'cron'"),
    ("", 'name = "Shop_1"',
     "error: taskpack.toml: kubernetes.name: 'Shop_1' is not a DNS label for a Service"),
    ("", 'name = "1shop"',
     "error: taskpack.toml: kubernetes.name: '1shop' is not a DNS label for a Service"),
    ("", 'base_image = "python:latest"',
     "error: taskpack.toml: kubernetes.base_image: 'python:latest' is not pinned"),
])
def test_refusals(tmp_path: Path, schedules: str, extra: str, line: str) -> None:
    root = k8s_project(tmp_path / "shop", schedules=schedules, extra=extra)
    result = build_cli(root)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(line), lines
    assert not (root / ".output").exists()


# -- the Dockerfile -----------------------------------------------------------------------


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    return [(line.split(" ", 1)[0], line.split(" ", 1)[1]) for line in dockerfile.splitlines()
            if line and not line.startswith("#")]


def test_dockerfile_structure(tmp_path: Path) -> None:
    root = k8s_project(tmp_path / "shop")
    assert build_cli(root).exit_code == 0
    steps = instructions((root / ".output" / "Dockerfile").read_text())
    verbs = [verb for verb, _ in steps]
    base = steps[0]
    assert base[0] == "FROM" and re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", base[1])
    # requirements first (their layer survives a code change), then the code
    copy_requirements = steps.index(("COPY", "server/requirements.txt ./requirements.txt"))
    install = steps.index(("RUN", "pip install -r requirements.txt"))
    copy_code = steps.index(("COPY", "server/ ./"))
    assert copy_requirements < install < copy_code
    user = verbs.index("USER")
    assert steps[user][1] not in ("root", "0") and user < verbs.index("CMD")
    assert verbs.count("USER") == 1
    assert "/_health" in dict(steps)["HEALTHCHECK"]
    for verb, argument in steps:  # nothing secret baked into the image
        assert verb != "ARG"
        assert not re.search(r"TOKEN|SECRET|PASSWORD|DATABASE_URL|KEY", argument), argument


def test_dockerfile_steps_and_cronjob_command_in_a_fresh_venv(tmp_path: Path) -> None:
    """The Dockerfile's steps run by hand: COPY into a stand-in file
    system, RUN pip in a fresh virtualenv, CMD started with the image's
    ENV; then a CronJob's command with what the downward API passes."""
    root = k8s_project(tmp_path / "shop")
    assert build_cli(root).exit_code == 0
    out = root / ".output"
    image = tmp_path / "image"  # '/' of the container
    python = tmp_path / "venv" / "bin" / "python"
    venv.EnvBuilder(with_pip=True).create(tmp_path / "venv")
    env = {"PATH": f"{python.parent}:/usr/bin:/bin"}
    workdir = "/"

    def host(path: str) -> Path:
        return image / (path if path.startswith("/") else f"{workdir}/{path}").lstrip("/")

    cmd: list[str] = []
    for verb, argument in instructions((out / "Dockerfile").read_text()):
        if verb == "ENV":
            env.update(pair.split("=", 1) for pair in shlex.split(argument))
        elif verb == "WORKDIR":
            workdir = argument
            host(".").mkdir(parents=True, exist_ok=True)
        elif verb == "COPY":
            source, dest = argument.split()
            if source.endswith("/"):
                shutil.copytree(out / source, host(dest), dirs_exist_ok=True)
            else:
                shutil.copy(out / source, host(dest))
        elif verb == "RUN" and argument.startswith("pip "):
            subprocess.run([str(python), "-m", *shlex.split(argument)], cwd=host("."),
                           env=env, check=True, timeout=600)
        elif verb == "CMD":
            cmd = json.loads(argument)
    env["PYTHONPATH"] = str(host(env["PYTHONPATH"]))
    record_to = tmp_path / "records.jsonl"
    port = free_port()
    argv = [str(python), *(str(host(a)) if a.startswith("/") else a for a in cmd[1:])]
    deployment = next(doc for doc in manifests(out) if doc["kind"] == "Deployment")
    pod_env = {item["name"]: item["value"]  # what the Deployment adds to the image's ENV
               for item in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    server = ServerProcess(argv, {**env, **pod_env, "PORT": str(port),
                                  "TASKPACK_TASKS_TOKEN": "t0ken", "RECORD_TO": str(record_to)},
                           tmp_path / "server.log", cwd=host("."))
    try:
        assert server.wait_healthy(60)["status"] == "ok"
        listing = httpx.get(server.url + "/_nitro/tasks",
                            headers={"authorization": "Bearer t0ken"}, timeout=10)
        assert listing.status_code == 200
        wait_for(lambda: "scheduler off" in server.logs() or None, 10, "the scheduler-off line")
        assert server.terminate() == 0
    finally:
        server.stop()

    job = next(doc for doc in manifests(out)
               if doc["kind"] == "CronJob" and doc["spec"]["schedule"] == "0 6 * * 1-5")
    command = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"]
    minutes = int(datetime(2026, 3, 23, 5, 0, tzinfo=UTC).timestamp()) // 60
    fresh = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=3)
    fresh_minutes = int(fresh.timestamp()) // 60

    def fire(extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(python), *command[1:]], cwd=host("."), text=True,
                              env={**env, "RECORD_TO": str(record_to), **extra},
                              capture_output=True, timeout=120)

    record_to.unlink(missing_ok=True)
    named = fire({"TASKPACK_JOB_NAME": f"{job['metadata']['name']}-{fresh_minutes}"})
    assert named.returncode == 1, named.stderr  # 'fail' failed; 'record' still ran
    assert "RuntimeError: boom" in named.stderr and "from Job name" in named.stderr
    by_hand = fire({"TASKPACK_SCHEDULED_TIME": "2026-03-23T06:00:00+01:00"})
    assert by_hand.returncode == 1
    stale = fire({"TASKPACK_JOB_NAME": f"{job['metadata']['name']}-{minutes}"})  # too old
    assert "from the schedule" in stale.stderr
    records = [json.loads(line)["payload"]["scheduledTime"]
               for line in record_to.read_text().splitlines()]
    expected_latest = latest_fire(CronExpr.parse("0 6 * * 1-5"), "Europe/Berlin",
                                  datetime.now(UTC))
    assert records[0] == fresh_minutes * 60_000
    assert records[1] == minutes * 60_000
    assert records[2] == int(expected_latest.timestamp() * 1000)
    unknown = fire({})
    unknown_cmd = subprocess.run([str(python), *command[1:-1], "0 7 * * *"], cwd=host("."),
                                 text=True, env=env, capture_output=True, timeout=120)
    assert unknown.returncode == 1
    assert unknown_cmd.returncode == 2
    assert "error: no schedule of this bundle means '0 7 * * *'" in unknown_cmd.stderr


# -- the CronJob entry's time sources ----------------------------------------------------


def test_scheduled_time_sources() -> None:
    expr = CronExpr.parse("30 2 * * *")
    now = datetime(2026, 3, 30, 12, 0, tzinfo=UTC)
    from_name = scheduled_time(expr, "Europe/Berlin",
                               {"TASKPACK_JOB_NAME": "shop-1a2b3c4d-29577150"}, now)
    assert from_name == (29577150 * 60_000, "Job name 'shop-1a2b3c4d-29577150'")
    manual = scheduled_time(expr, "Europe/Berlin", {"TASKPACK_JOB_NAME": "manual-run"}, now)
    # latest 02:30 Berlin at or before now: 2026-03-30T00:30Z (CEST)
    assert manual == (int(datetime(2026, 3, 30, 0, 30, tzinfo=UTC).timestamp() * 1000),
                      "the schedule")
    with pytest.raises(FireError, match="TASKPACK_SCHEDULED_TIME: 'yesterday'"):
        scheduled_time(expr, "UTC", {"TASKPACK_SCHEDULED_TIME": "yesterday"}, now)
    yearly = latest_fire(CronExpr.parse("0 0 1 1 *"), "UTC", now)
    assert yearly == datetime(2026, 1, 1, tzinfo=UTC)


def test_scheduler_switch_of_the_server() -> None:
    from taskpack.server import ServerConfigError, scheduling_on

    assert scheduling_on({}) and scheduling_on({"TASKPACK_SCHEDULER": "ON"})
    assert not scheduling_on({"TASKPACK_SCHEDULER": "off"})
    with pytest.raises(ServerConfigError, match="TASKPACK_SCHEDULER: expected on or off, got 'no'"):
        scheduling_on({"TASKPACK_SCHEDULER": "no"})


# -- the CronJob entry records its runs in the bundle's store ------------------------------

def test_cronjob_runs_land_in_the_configured_store(tmp_path: Path, pg_url: str) -> None:
    """The CronJob's command, run as its own process with
    ``TASKPACK_DATABASE_URL`` (from the Secret), stores the fire's runs in
    that PostgreSQL: each with the fire's scheduledTime and the pod's host.
    A store it cannot reach is one error line, exit 2, no traceback."""
    root = write_files(tmp_path / "shop", {
        "tasks/echo.py": "from taskpack import define_task\n\n"
                         "@define_task()\ndef run(event):\n    return event.payload\n",
        "taskpack.toml": """
            timezone = "UTC"
            [scheduled_tasks]
            "*/5 * * * *" = "echo"
            [kubernetes]
            image = "shop:1"
        """,
    })
    assert build_cli(root).exit_code == 0
    when = "2026-03-23T06:05:00Z"
    env = clean_env({"PYTHONPATH": str(root / ".output" / "server"),
                     "TASKPACK_SCHEDULED_TIME": when})

    def fire(url: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "taskpack.platforms.kubernetes",
                               "*/5 * * * *"], cwd=tmp_path, text=True, capture_output=True,
                              env={**env, "TASKPACK_DATABASE_URL": url}, timeout=120)

    done = fire(pg_url)
    assert done.returncode == 0, done.stderr
    runs = url_runs(pg_url)
    scheduled_ms = int(datetime(2026, 3, 23, 6, 5, tzinfo=UTC).timestamp() * 1000)
    assert [(r.task, r.outcome, r.trigger, r.payload) for r in runs] == [
        ("echo", "ok", "schedule:*/5 * * * *", {"scheduledTime": scheduled_ms})]
    assert runs[0].host.startswith(socket.gethostname() + ":")
    assert runs[0].host != f"{socket.gethostname()}:{os.getpid()}"
    assert not (tmp_path / ".taskpack").exists()  # not also a SQLite file in the pod

    down = fire(f"postgresql://taskpack:secret@127.0.0.1:{free_port()}/shop")
    assert down.returncode == 2
    assert down.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "Traceback" not in down.stderr and "secret" not in down.stderr
