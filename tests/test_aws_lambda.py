"""Preset ``aws_lambda``: AWS cron, the SAM template, cfn-lint, the handler.

The cloud cannot exist here. What is tested is AWS's documented contract:
the cron syntax of the EventBridge "Cron expressions reference" (our own
checker, :mod:`taskpack.builder.aws_cron`, since no offline tool checks a
Scheduler cron), the template through ``cfn-lint`` below 1.54 (the last
line that applies the SAM transform offline), and the handler in a fresh
virtualenv holding only the bundle's ``requirements.txt``, invoked with
the Scheduler's ``Input`` (context attributes substituted as the
Scheduler documents) and Function URL events in payload format 2.0 (the
example in the Lambda developer guide, "Invoking Lambda function URLs").
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import venv
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from taskpack.builder.aws_cron import check_aws_cron
from taskpack.builder.build import build
from taskpack.builder.cli import main
from taskpack.builder.dialects import to_aws_scheduler
from taskpack.cron import CronError, CronExpr
from tests.helpers import FAILING, RECORDER, url_runs, write_files
from tests.servers import clean_env
from tests.test_cron import table_rows

# -- AWS cron: the checker against the documented rules ---------------------------

DOCUMENTED_VALID = [  # the examples of the EventBridge cron reference
    "cron(0 10 * * ? *)", "cron(15 12 * * ? *)", "cron(0 18 ? * MON-FRI *)",
    "cron(0 8 1 * ? *)", "cron(0/15 * * * ? *)", "cron(0/10 * ? * MON-FRI *)",
    "cron(0/5 8-17 ? * MON-FRI *)", "cron(0 9 ? * 2#1 *)", "cron(0 0 L * ? *)",
    "cron(0 0 3W * ? *)", "cron(0 12 ? JAN,FEB,MAR SUN 2026)", "cron(1/10 * * * ? 2026-2030)",
    "cron(15 10 ? * 6L *)", "cron(0 0 ? * L *)",
]
DOCUMENTED_INVALID = [
    ("cron(0 10 * * * *)", "exactly one of day-of-month and day-of-week must be '?'"),
    ("cron(0 10 ? * ? *)", "exactly one of day-of-month and day-of-week must be '?'"),
    ("cron(0 10 1 * MON *)", "exactly one of day-of-month and day-of-week must be '?'"),
    ("cron(0 10 ? * 3#1,6#3 *)", "with '#' the field holds one expression only"),
    ("cron(0 10 * * ?)", "expected six fields"),
    ("0 10 * * ? *", "is not written cron(...)"),
    ("cron(0 0 10 * * ? *)", "expected six fields"),
    ("cron(60 10 * * ? *)", "minutes: 60 is out of range 0-59"),
    ("cron(0 10 ? * 0 *)", "day-of-week: 0 is out of range 1-7"),
    ("cron(0 10 ? * 8 *)", "day-of-week: 8 is out of range 1-7"),
    ("cron(0 10 * * ? 1969)", "year: 1969 is out of range 1970-2199"),
    ("cron(0 10 ? * MON#6 *)", "the occurrence after '#' must be 1-5"),
    ("cron(0 10 5#1 * ? *)", "'#' is only allowed in day-of-week"),
    ("cron(0 L * * ? *)", "hours: 'L' in 'L' is not a number"),
    ("cron(0 10 ? * MONW *)", "day-of-week: 'MONW' in 'MONW' is not a number or a name"),
    ("cron(? 10 * * ? *)", "minutes: '?' is only allowed in day-of-month and day-of-week"),
    ("cron(*/5 10 * * ? *)", "write increments as start/step (0/5)"),
    ("cron(0 10 * FOO ? *)", "month: 'FOO' in 'FOO' is not a number or a name"),
]


@pytest.mark.parametrize("text", DOCUMENTED_VALID)
def test_checker_accepts_what_aws_documents(text: str) -> None:
    check_aws_cron(text)


@pytest.mark.parametrize(("text", "reason"), DOCUMENTED_INVALID)
def test_checker_refuses_what_aws_rules_out(text: str, reason: str) -> None:
    with pytest.raises(CronError, match=re.escape(reason)):
        check_aws_cron(text)


def back_to_croner(aws: str) -> str:
    """An AWS expression in croner's dialect, to compare meanings: ``?`` is
    ``*``, weekdays 1-7 become 0-6, ``a/s`` is ``a-<max>/s``, the year
    (always ``*`` here) goes."""
    fields = aws.removeprefix("cron(").removesuffix(")").split()
    assert fields[5] == "*"
    tops = {0: 59, 1: 23, 2: 31, 3: 12}

    def plain(index: int, token: str) -> str:
        if token == "?":
            return "*"
        return re.sub(r"^(\d+)/(\d+)$", lambda m: f"{m[1]}-{tops[index]}/{m[2]}", token)

    dow = fields[4]
    nth = re.fullmatch(r"(\d)(#\d|L)", dow)
    if nth:
        dow = f"{int(nth[1]) - 1}{nth[2]}"
    return " ".join([*(plain(i, t) for i, t in enumerate(fields[:4])), plain(4, dow)])


@pytest.mark.parametrize("row", table_rows(), ids=lambda row: row[0])
def test_translation_keeps_the_meaning_or_refuses(row: list[str]) -> None:
    """Every expression of the shared conformance table: refused with a
    reason, or translated into a string AWS's rules accept that means what
    the user wrote."""
    try:
        expr = CronExpr.parse(row[0])
    except CronError:
        return  # refused by taskpack's dialect itself, for every preset
    try:
        aws = to_aws_scheduler(expr)
    except CronError as exc:
        assert expr.has_seconds or expr.both_days_restricted, exc
        return
    check_aws_cron(aws)
    assert CronExpr.parse(back_to_croner(aws)) == expr, aws


@pytest.mark.parametrize(("written", "deployed"), [
    ("*/15 * * * *", "cron(0/15 * * * ? *)"),
    ("0 9-17/2 * * *", "cron(0 9,11,13,15,17 * * ? *)"),
    ("0 12 * * 1-5", "cron(0 12 ? * MON-FRI *)"),
    ("0 0 * * 0,6", "cron(0 0 ? * SUN,SAT *)"),
    ("0 0 * * 7", "cron(0 0 ? * SUN *)"),
    ("0 0 1 * *", "cron(0 0 1 * ? *)"),
    ("0 0 L * *", "cron(0 0 L * ? *)"),
    ("0 0 15W * *", "cron(0 0 15W * ? *)"),
    ("0 9 * * MON#1", "cron(0 9 ? * 2#1 *)"),
    ("0 9 * * FRI#L", "cron(0 9 ? * 6L *)"),
    ("@monthly", "cron(0 0 1 * ? *)"),
    ("0 0 1 1-12/3 *", "cron(0 0 1 1/3 ? *)"),
])
def test_translations(written: str, deployed: str) -> None:
    assert to_aws_scheduler(CronExpr.parse(written)) == deployed


@pytest.mark.parametrize(("written", "reason"), [
    ("*/30 * * * * *", "EventBridge Scheduler cron expressions run at minute resolution"),
    ("0 0 1 * MON", "cannot set both day-of-month and day-of-week"),
])
def test_refusals(written: str, reason: str) -> None:
    with pytest.raises(CronError, match=reason):
        to_aws_scheduler(CronExpr.parse(written))


def test_cron_command_shows_the_translation_and_the_refusal() -> None:
    ok = CliRunner().invoke(main, ["cron", "0 12 * * 1-5", "--preset", "aws-lambda",
                                   "--tz", "Europe/Berlin", "-n", "1"])
    assert ok.exit_code == 0, ok.output
    assert ("aws-lambda: deploys 'cron(0 12 ? * MON-FRI *)' (EventBridge Scheduler)"
            in ok.stdout)
    refused = CliRunner().invoke(main, ["cron", "0 0 1 * MON", "--preset", "aws_lambda"])
    assert refused.exit_code == 2
    assert refused.stderr.strip().splitlines() == [
        "error: --preset aws_lambda: EventBridge Scheduler cannot set both day-of-month and "
        "day-of-week (one must be '?'; here croner would run when EITHER matches). Split it "
        "into two schedules."]


# -- the build ----------------------------------------------------------------------



def lambda_project(root: Path, *, extra: str = "", schedules: str = "") -> Path:
    return write_files(root, {
        "tasks/record.py": RECORDER,
        "tasks/fail.py": FAILING,
        "taskpack.toml": f"""
            timezone = "Europe/Berlin"
            [scheduled_tasks]
            "0 6 * * MON-FRI" = ["record", "fail"]
            "30 2 * * *" = "record"
            {schedules}
            [aws_lambda]
            tasks_api = true
            {extra}
        """,
    })


def build_cli(root: Path, *args: str) -> Any:
    return CliRunner().invoke(main, ["build", "--root", str(root), "--preset", "aws-lambda",
                                     *args])


def test_template_holds_one_schedule_per_deployed_schedule(tmp_path: Path) -> None:
    root = lambda_project(tmp_path / "proj", schedules='"0 6 * * 1-5" = "record"')
    result = build_cli(root)
    assert result.exit_code == 0, result.output
    assert "EventBridge Scheduler skips such fires" in result.stderr  # 02:30 in Berlin
    out = root / ".output"
    text = (out / "template.yaml").read_text()
    assert "Mode: 'OFF'" in text  # quoted: unquoted OFF is YAML 1.1's false
    template = yaml.safe_load(text)
    function = template["Resources"]["TaskpackFunction"]["Properties"]
    assert function["Runtime"] == "python3.14"
    assert function["Handler"] == "app.handler" and function["CodeUri"] == "src/"
    assert function["FunctionUrlConfig"] == {"AuthType": "NONE"}
    assert function["Environment"]["Variables"] == {"TASKPACK_TASKS_TOKEN": {"Ref": "TasksToken"}}
    events = function["Events"]
    assert len(events) == 2  # '0 6 * * 1-5' merged into '0 6 * * MON-FRI'
    by_cron = {e["Properties"]["ScheduleExpression"]: e for e in events.values()}
    assert set(by_cron) == {"cron(0 6 ? * MON-FRI *)", "cron(30 2 * * ? *)"}
    for cron, event in by_cron.items():
        props = event["Properties"]
        assert event["Type"] == "ScheduleV2"
        assert props["ScheduleExpressionTimezone"] == "Europe/Berlin"
        assert props["OmitName"] is True
        assert props["FlexibleTimeWindow"] == {"Mode": "OFF"}
        assert props["RetryPolicy"] == {"MaximumRetryAttempts": 2,
                                        "MaximumEventAgeInSeconds": 3600}
        assert json.loads(props["Input"]) == {
            "taskpack": "schedule", "schedule": cron,
            "scheduledTime": "<aws.scheduler.scheduled-time>",
            "attempt": "<aws.scheduler.attempt-number>"}
    record = json.loads((out / "taskpack.json").read_text())
    assert record["preset"] == "aws_lambda"
    assert [s["cron"] for s in record["schedules"]] == ["cron(0 6 ? * MON-FRI *)",
                                                        "cron(30 2 * * ? *)"]
    assert "src/app.py" in record["files"] and "src/requirements.txt" in record["files"]
    assert "src/taskpack/platforms/aws_lambda.py" in record["files"]


def test_output_is_deterministic(tmp_path: Path) -> None:
    root = lambda_project(tmp_path / "proj")
    first = build(root, preset="aws_lambda", output=tmp_path / "a").record
    second = build(root, preset="aws_lambda", output=tmp_path / "b").record
    assert first == second


@pytest.mark.parametrize(("schedules", "line"), [
    ('"0 0 1 * MON" = "record"',
     "error: taskpack.toml: scheduled_tasks.\"0 0 1 * MON\": EventBridge Scheduler cannot set "
     "both day-of-month and day-of-week"),
    ('"*/30 * * * * *" = "record"',
     "error: taskpack.toml: scheduled_tasks.\"*/30 * * * * *\": EventBridge Scheduler cron "
     "expressions run at minute resolution"),
])
def test_refused_schedules_fail_the_build(tmp_path: Path, schedules: str, line: str) -> None:
    root = lambda_project(tmp_path / "proj", schedules=schedules)
    result = build_cli(root)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(line), lines
    assert not (root / ".output").exists()  # atomic: nothing written


@pytest.mark.parametrize(("extra", "line"), [
    ('pyton = "3.13"', "error: taskpack.toml: aws_lambda.pyton: unknown key (did you mean "
                       "'python'?)"),
    ('python = "3.9"', "error: taskpack.toml: aws_lambda.python: expected one of '3.12', "
                       "'3.13', '3.14', got '3.9'"),
    ("timeout = 901", "error: taskpack.toml: aws_lambda.timeout: must be 1-900, got 901"),
    ("retry_attempts = 186", "error: taskpack.toml: aws_lambda.retry_attempts: must be 0-185, "
                             "got 186"),
])
def test_bad_options(tmp_path: Path, extra: str, line: str) -> None:
    result = build_cli(lambda_project(tmp_path / "proj", extra=extra))
    assert result.exit_code == 2
    assert result.stderr.strip() == line


def cfn_lint(template: Path) -> subprocess.CompletedProcess[str]:
    cfn_lint_bin = Path(sys.executable).parent / "cfn-lint"  # installed by the dev extra
    return subprocess.run([str(cfn_lint_bin), str(template)],
                          capture_output=True, text=True, timeout=300,
                          env={"AWS_DEFAULT_REGION": "us-east-1", "PATH": "/usr/bin:/bin"})


def test_cfn_lint_passes_and_would_catch_a_bad_template(tmp_path: Path) -> None:
    import cfnlint.version

    assert cfnlint.version.__version__ < "1.54"  # the line that applies the SAM transform
    root = lambda_project(tmp_path / "proj", extra='python = "3.12"\nmemory = 1024')
    assert build_cli(root).exit_code == 0
    template = root / ".output" / "template.yaml"
    result = cfn_lint(template)
    assert result.returncode == 0, result.stdout + result.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text(template.read_text().replace("python3.12", "python3.99")
                      .replace("MaximumRetryAttempts: 2", "MaximumRetryAttempts: 500"))
    result = cfn_lint(broken)
    assert result.returncode != 0
    assert "'python3.99' is not one of" in result.stdout, result.stdout
    assert "500 is greater than the maximum of 185" in result.stdout, result.stdout


# -- the handler, in a fresh virtualenv ------------------------------------------------

DRIVER = """
import json, sys
sys.path.insert(0, sys.argv[1])  # Lambda puts the task root on sys.path
import app
for line in sys.stdin:
    try:
        print(json.dumps({"ok": app.handler(json.loads(line), None)}), flush=True)
    except Exception as exc:
        print(json.dumps({"raised": f"{type(exc).__name__}: {exc}"}), flush=True)
"""


def url_event(method: str, raw_path: str, *, query: str = "", headers: dict[str, str] | None = None,
              body: str | None = None, base64: bool = False) -> dict[str, Any]:
    """A Function URL request in payload format 2.0, shaped as the example
    of the Lambda developer guide."""
    return {
        "version": "2.0", "routeKey": "$default", "rawPath": raw_path, "rawQueryString": query,
        "cookies": [], "headers": {"content-type": "application/json", **(headers or {})},
        "queryStringParameters": None,
        "requestContext": {
            "accountId": "123456789012", "apiId": "abcdefgh", "authentication": None,
            "domainName": "abcdefgh.lambda-url.us-west-2.on.aws", "domainPrefix": "abcdefgh",
            "http": {"method": method, "path": raw_path, "protocol": "HTTP/1.1",
                     "sourceIp": "203.0.113.9", "userAgent": "curl/8.5.0"},
            "requestId": "id", "routeKey": "$default", "stage": "$default",
            "time": "22/Mar/2026:18:59:43 +0000", "timeEpoch": 1774205983000,
        },
        "body": body, "pathParameters": None, "isBase64Encoded": base64, "stageVariables": None,
    }


def substituted(input_json: str, scheduled: str, attempt: str = "1") -> dict[str, Any]:
    """The event a Scheduler delivers: the schedule's Input with its
    context attributes replaced."""
    text = (input_json.replace("<aws.scheduler.scheduled-time>", scheduled)
            .replace("<aws.scheduler.attempt-number>", attempt))
    event: dict[str, Any] = json.loads(text)
    return event


def fresh_venv(path: Path, requirements: Path) -> Path:
    venv.EnvBuilder(with_pip=True, clear=True).create(path)
    python = path / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    "-r", str(requirements)], check=True, timeout=600)
    return python


def test_handler_in_a_fresh_venv(tmp_path: Path) -> None:
    root = lambda_project(tmp_path / "proj")
    assert build_cli(root).exit_code == 0
    src = root / ".output" / "src"
    requirements = (src / "requirements.txt").read_text()
    assert not [line for line in requirements.splitlines() if not line.startswith("#")]
    python = fresh_venv(tmp_path / "venv", src / "requirements.txt")
    template = yaml.safe_load((root / ".output" / "template.yaml").read_text())
    inputs = {e["Properties"]["ScheduleExpression"]: e["Properties"]["Input"]
              for e in template["Resources"]["TaskpackFunction"]["Properties"]["Events"].values()}
    weekday = inputs["cron(0 6 ? * MON-FRI *)"]
    token = "s3cret-token"
    auth = {"authorization": f"Bearer {token}"}
    events = [
        substituted(weekday, "2026-03-23T05:00:00Z"),
        substituted(weekday, "2026-03-23T05:00:00Z", attempt="2"),  # a retried delivery
        json.loads(weekday),  # placeholders not substituted: refused loudly
        {**substituted(weekday, "2026-03-23T05:00:00Z"), "schedule": "cron(1 1 * * ? *)"},
        url_event("GET", "/_nitro/tasks", headers=auth),
        url_event("POST", "/_nitro/tasks/record", query="a=1&a=2", headers=auth,
                  body="eyJwYXlsb2FkIjogeyJiIjogdHJ1ZX19", base64=True),  # {"payload": {"b": true}}
        url_event("GET", "/_nitro/tasks/record"),
        url_event("GET", "/_nitro/tasks/record", headers={"authorization": "Bearer nope"}),
        url_event("GET", "/elsewhere", headers=auth),
    ]
    record_to = tmp_path / "records.jsonl"
    env = {"PATH": "/usr/bin:/bin", "RECORD_TO": str(record_to), "TASKPACK_TASKS_TOKEN": token}
    done = subprocess.run([str(python), "-I", "-c", DRIVER, str(src)], env=env, text=True,
                          input="".join(json.dumps(e) + "\n" for e in events),
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    assert answers[0] == {"ok": {"success": False, "tasks": {"record": "ok", "fail": "error"}}}
    assert answers[1] == answers[0]
    assert "delivery attempt 2" in done.stderr and "RuntimeError: boom" in done.stderr
    assert answers[2]["raised"].startswith("ValueError: taskpack: scheduledTime "
                                           "'<aws.scheduler.scheduled-time>' is not")
    assert answers[3]["raised"].startswith("ValueError: taskpack: unknown schedule "
                                           "'cron(1 1 * * ? *)'")
    listing = answers[4]["ok"]
    assert listing["statusCode"] == 200 and listing["isBase64Encoded"] is False
    assert "record" in json.loads(listing["body"])["tasks"]
    run = answers[5]["ok"]
    assert run["statusCode"] == 200, run
    assert json.loads(run["body"]) == {"seen": {"a": ["1", "2"], "b": True}}
    assert [a["ok"]["statusCode"] for a in answers[6:]] == [401, 401, 404]
    scheduled_ms = 1774242000000  # 2026-03-23T05:00:00Z: the scheduled time, both deliveries
    records = [json.loads(line) for line in record_to.read_text().splitlines()]
    assert records == [
        {"task": "record", "payload": {"scheduledTime": scheduled_ms}},
        {"task": "record", "payload": {"scheduledTime": scheduled_ms}},
        {"task": "record", "payload": {"a": ["1", "2"], "b": True}},
    ]
    # Fail closed: without the token variable the API answers 500, never open.
    closed = subprocess.run([str(python), "-I", "-c", DRIVER, str(src)], text=True,
                            env={"PATH": "/usr/bin:/bin", "RECORD_TO": str(record_to)},
                            input=json.dumps(url_event("GET", "/_nitro/tasks")) + "\n",
                            capture_output=True, timeout=120)
    answer = json.loads(closed.stdout)["ok"]
    assert answer["statusCode"] == 500
    assert "TASKPACK_TASKS_TOKEN is not set" in json.loads(answer["body"])["message"]


def test_build_help_lists_the_preset() -> None:
    result = CliRunner().invoke(main, ["build", "--help"])
    assert result.exit_code == 0
    assert re.search(r"aws_lambda\s+a SAM project: AWS Lambda \+ EventBridge Scheduler \(alias\s+"
                     r"aws-lambda\)", result.stdout), result.stdout


def test_fires_are_recorded_in_a_configured_postgres_store(tmp_path: Path, pg_url: str) -> None:
    """With ``TASKPACK_DATABASE_URL`` set the handler records its runs in
    that PostgreSQL (written before the invocation returns); a SQLite URL
    is not used on Lambda (no shared disk): memory. The handler runs in its
    own process (the test's venv supplies psycopg, as ``[store] driver =
    "postgres"`` makes the build's requirements do)."""
    root = lambda_project(tmp_path / "proj", extra='[store]\ndriver = "postgres"')
    assert build_cli(root).exit_code == 0
    src = root / ".output" / "src"
    assert "psycopg" in (src / "requirements.txt").read_text()
    template = yaml.safe_load((root / ".output" / "template.yaml").read_text())
    inputs = {e["Properties"]["ScheduleExpression"]: e["Properties"]["Input"]
              for e in template["Resources"]["TaskpackFunction"]["Properties"]["Events"].values()}
    event = substituted(inputs["cron(0 6 ? * MON-FRI *)"], "2026-03-23T05:00:00Z")

    def invoke(url: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", DRIVER, str(src)], text=True,
                              input=json.dumps(event) + "\n", capture_output=True, timeout=120,
                              cwd=tmp_path, env={**clean_env({}), "TASKPACK_DATABASE_URL": url,
                                                 "RECORD_TO": str(tmp_path / "records.jsonl")})

    done = invoke(pg_url)
    assert json.loads(done.stdout)["ok"]["success"] is False, done.stderr  # 'fail' failed
    runs = url_runs(pg_url)
    assert sorted((r.task, r.outcome, r.payload["scheduledTime"]) for r in runs) == [
        ("fail", "error", 1774242000000), ("record", "ok", 1774242000000)]
    assert all(r.host.startswith(socket.gethostname() + ":") for r in runs)
    on_disk = invoke("sqlite:///runs.sqlite")
    assert "ok" in json.loads(on_disk.stdout), on_disk.stderr
    assert "TASKPACK_DATABASE_URL is not a PostgreSQL URL" in on_disk.stderr
    assert not (tmp_path / "runs.sqlite").exists() and not (src / "runs.sqlite").exists()
