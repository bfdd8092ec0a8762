"""The CLI driven in-process with click's CliRunner, in isolated folders."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from taskpack import __version__, set_registry
from taskpack.builder.cli import main
from tests.helpers import MakeProject


@pytest.fixture(autouse=True)
def no_current_registry() -> Iterator[None]:
    yield
    set_registry(None)


def invoke(root: Path, *args: str) -> tuple[int, str, str]:
    runner = CliRunner()
    result = runner.invoke(main, [*args, "--root", str(root)] if "task" in args else list(args))
    return result.exit_code, result.stdout, result.stderr


def test_version() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.output == f"taskpack, version {__version__}\n"


def test_task_list_json(basic_example: Path) -> None:
    code, out, _ = invoke(basic_example, "task", "list", "--json")
    assert code == 0
    listing = json.loads(out)
    assert listing["tasks"] == {
        "cms:update": {"description": "Refresh CMS content", "lastRun": None},
        "db:migrate": {"description": "Run database migrations", "lastRun": None},
        "echo:payload": {"description": "Echo the payload back.", "lastRun": None},
        "report:daily": {"description": "Build the daily report", "lastRun": None},
    }
    assert listing["scheduledTasks"][2] == {"cron": "0 6 * * MON-FRI",
                                            "tasks": ["report:daily", "cms:update"]}
    assert not (basic_example / ".taskpack").exists()  # listing creates no history


def test_task_list_shows_last_runs_from_the_history(basic_example: Path) -> None:
    assert invoke(basic_example, "task", "run", "echo:payload", "--local")[0] == 0
    code, out, _ = invoke(basic_example, "task", "list", "--json")
    assert code == 0
    tasks = json.loads(out)["tasks"]
    last = tasks["echo:payload"]["lastRun"]
    assert (last["task"], last["trigger"], last["outcome"]) == ("echo:payload", "manual", "ok")
    assert tasks["db:migrate"]["lastRun"] is None
    code, out, _ = invoke(basic_example, "task", "list")
    started = datetime.fromtimestamp(last["started_at"], UTC).strftime("%Y-%m-%d %H:%M:%S")
    assert f"echo:payload  Echo the payload back.  (last run: ok at {started} UTC, " in out


def test_task_list_table(basic_example: Path) -> None:
    code, out, _ = invoke(basic_example, "task", "list")
    assert code == 0
    assert out.splitlines()[0] == (
        "cms:update    Refresh CMS content  [* * * * *, 0 6 * * MON-FRI]"
    )
    assert "echo:payload  Echo the payload back.\n" in out


def test_task_list_does_not_import_task_modules(make_project: MakeProject,
                                                tmp_path: Path) -> None:
    marker = tmp_path / "imported"
    root = make_project({"tasks/side.py": f"""
        open({str(marker)!r}, "w").close()
        from taskpack import define_task

        @define_task(description="has a side effect")
        def run(event):
            return 1
    """})
    code, out, _ = invoke(root, "task", "list", "--json")
    assert code == 0 and "has a side effect" in out
    assert not marker.exists()


def test_task_run_prints_the_result(basic_example: Path) -> None:
    code, out, _ = invoke(basic_example, "task", "run", "echo:payload", "--payload", '{"a":1}')
    assert (code, out) == (0, '{"result": {"a": 1}}\n')


def test_task_prints_go_to_stderr(basic_example: Path) -> None:
    code, out, err = invoke(basic_example, "task", "run", "db:migrate")
    assert (code, out) == (0, '{"result": "Success"}\n')
    assert "Running DB migration task... {}" in err


@pytest.mark.parametrize(("args", "code", "message"), [
    (("task", "run", "nope"), 2, "error: Task `nope` is not available!"),
    (("task", "run", "echo:payload", "--payload", "[1]"), 2,
     "error: --payload: expected a JSON object, got an array"),
    (("task", "run", "echo:payload", "--payload", '"x"'), 2,
     "error: --payload: expected a JSON object, got a string"),
    (("task", "run", "echo:payload", "--payload", "{oops"), 2,
     "error: --payload: invalid JSON: Expecting property name enclosed in double quotes: "
     "line 1 column 2 (char 1)"),
])
def test_task_run_errors(basic_example: Path, args: tuple[str, ...], code: int,
                         message: str) -> None:
    got_code, out, err = invoke(basic_example, *args)
    assert (got_code, out, err) == (code, "", message + "\n")


def test_failing_task_exits_1_with_the_message(make_project: MakeProject) -> None:
    root = make_project({"tasks/boom.py": """
        from taskpack import define_task

        @define_task
        def run(event):
            raise ValueError("it broke")
    """})
    code, out, err = invoke(root, "task", "run", "boom")
    assert (code, out, err) == (1, "", "error: task `boom` failed: ValueError: it broke\n")
    code, _, err = invoke(root, "--debug", "task", "run", "boom")
    assert code == 1
    assert "Traceback (most recent call last)" in err and 'raise ValueError("it broke")' in err


def test_unserialisable_result(make_project: MakeProject) -> None:
    root = make_project({"tasks/obj.py": """
        from taskpack import define_task

        @define_task
        def run(event):
            return object()
    """})
    code, _, err = invoke(root, "task", "run", "obj")
    assert code == 1
    assert err.startswith("error: task `obj` returned a value that is not JSON-serialisable")


def test_unimplemented_task_exits_2(make_project: MakeProject) -> None:
    root = make_project({"taskpack.toml": '[tasks.later]\ndescription = "soon"\n'})
    assert invoke(root, "task", "run", "later")[::2] == (
        2, "error: Task `later` is not implemented!\n")


def test_payload_refused_by_the_schema_exits_2(make_project: MakeProject) -> None:
    """A payload the task's payload_schema rejects is bad input, like an
    invalid --payload: exit 2, not "the task failed"."""
    root = make_project({"tasks/ship.py": """
        from taskpack import define_task

        def order(payload):
            if not isinstance(payload.get("id"), int):
                raise ValueError("id: expected an integer")
            return payload

        @define_task(payload_schema=order)
        def run(event):
            return event.payload["id"]
    """})
    assert invoke(root, "task", "run", "ship", "--payload", '{"id": 1}')[:2] == (0, "1\n")
    assert invoke(root, "task", "run", "ship", "--payload", '{"id": "x"}') == (
        2, "", "error: Task `ship`: invalid payload: id: expected an integer\n")


@pytest.mark.parametrize(("args", "message"), [
    (("runs", "--limit", "0"), "error: Invalid value for '--limit': 0 is not in the range x>=1. "
                               "(see `taskpack runs --help`)"),
    (("frobnicate",), "error: No such command 'frobnicate'. (see `taskpack --help`)"),
    (("--bogus",), "error: No such option '--bogus'. (see `taskpack --help`)"),
    (("--debu", "build"), "error: No such option '--debu'. Did you mean '--debug'? "
                          "(see `taskpack --help`)"),
    (("task", "run"), "error: Missing argument 'NAME'. (see `taskpack task run --help`)"),
])
def test_usage_errors_are_one_line_and_exit_2(args: tuple[str, ...], message: str) -> None:
    result = CliRunner().invoke(main, list(args), prog_name="taskpack")
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", message + "\n")


def test_a_group_without_its_command_shows_its_help() -> None:
    # As `taskpack` alone: the help on stdout, exit 0 (asking for nothing is not an error).
    result = CliRunner().invoke(main, ["task"])
    assert result.exit_code == 0 and "Commands:" in result.stdout and result.stderr == ""


def test_config_errors_are_one_line_and_exit_2(make_project: MakeProject) -> None:
    root = make_project({"taskpack.toml": "scheduledTasks = {}\n"})
    code, out, err = invoke(root, "task", "list")
    assert (code, out, err) == (
        2, "", "error: taskpack.toml: scheduledTasks: unknown key "
               "(did you mean 'scheduled_tasks'?)\n")


def test_debug_shows_the_traceback_of_a_config_error(make_project: MakeProject) -> None:
    root = make_project({"taskpack.toml": "scheduledTasks = {}\n"})
    result = CliRunner().invoke(main, ["--debug", "task", "list", "--root", str(root)])
    assert result.exit_code == 1
    assert "ConfigError" in repr(result.exception)


def test_root_must_be_a_folder(tmp_path: Path) -> None:
    code, _, err = invoke(tmp_path / "missing", "task", "list")
    assert code == 2
    assert err == f"error: --root: {tmp_path / 'missing'} is not a folder\n"


def test_default_root_is_the_current_folder(basic_example: Path) -> None:
    runner = CliRunner()
    cwd = os.getcwd()
    os.chdir(basic_example)
    try:
        result = runner.invoke(main, ["task", "list", "--json"])
    finally:
        os.chdir(cwd)
    assert result.exit_code == 0 and "echo:payload" in result.stdout
