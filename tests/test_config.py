"""Config loading: file selection, key validation, and the exact error shapes."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskpack.builder.config import load_config
from taskpack.builder.errors import ConfigError
from tests.helpers import MakeProject


def error_of(root: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(root)
    return str(info.value)


def test_no_config_means_defaults(make_project: MakeProject) -> None:
    config = load_config(make_project({"tasks/a.py": ""}))
    assert config.file is None
    assert (config.tasks_dir, config.output_dir, config.timezone) == ("tasks", ".output", "UTC")
    assert config.scheduled_tasks == ()


def test_toml_yaml_and_pyproject_are_equivalent(make_project: MakeProject) -> None:
    toml = make_project({"taskpack.toml": """
        tasks_dir = "jobs"
        [scheduled_tasks]
        "* * * * *" = ["a", "b"]
        "0 * * * *" = "c"
    """})
    yaml = make_project({"taskpack.yaml": """
        tasks_dir: jobs
        scheduled_tasks:
          "* * * * *": [a, b]
          "0 * * * *": c
    """})
    pyproject = make_project({"pyproject.toml": """
        [project]
        name = "x"
        [tool.taskpack]
        tasks_dir = "jobs"
        [tool.taskpack.scheduled_tasks]
        "* * * * *" = ["a", "b"]
        "0 * * * *" = "c"
    """})
    expected = (("* * * * *", ("a", "b")), ("0 * * * *", ("c",)))
    for root in (toml, yaml, pyproject):
        config = load_config(root)
        assert config.tasks_dir == "jobs"
        assert config.scheduled_tasks == expected


def test_pyproject_without_tool_table_is_not_a_config(make_project: MakeProject) -> None:
    root = make_project({"pyproject.toml": "[project]\nname = 'x'\n",
                         "taskpack.toml": "tasks_dir = 'jobs'\n"})
    assert load_config(root).label == "taskpack.toml"


def test_two_config_files_are_an_error_naming_both(make_project: MakeProject) -> None:
    root = make_project({"taskpack.toml": "", "taskpack.yaml": ""})
    assert error_of(root) == (
        "taskpack.toml: two config files found (taskpack.toml and taskpack.yaml); keep one"
    )


@pytest.mark.parametrize(("text", "message"), [
    ("scheduledTasks = {}", "taskpack.toml: scheduledTasks: unknown key "
                            "(did you mean 'scheduled_tasks'?)"),
    ("tasksDir = 'x'", "taskpack.toml: tasksDir: unknown key (did you mean 'tasks_dir'?)"),
    ("output_dri = 'x'", "taskpack.toml: output_dri: unknown key (did you mean 'output_dir'?)"),
    ("[server]\ntasksApi = true", "taskpack.toml: server.tasksApi: unknown key "
                                  "(did you mean 'tasks_api'?)"),
    ("[tasks.a]\nhandlr = 'x.py'", "taskpack.toml: tasks.a.handlr: unknown key "
                                   "(did you mean 'handler'?)"),
    ("tasks_dir = 3", "taskpack.toml: tasks_dir: expected a string, got an integer"),
    ("tasks_dir = '../elsewhere'", "taskpack.toml: tasks_dir: must be a folder inside the "
                                   "project, got '../elsewhere'"),
    ("output_dir = '/tmp/out'", "taskpack.toml: output_dir: must be a folder inside the "
                                "project, got '/tmp/out'"),
    ("timezone = 'Mars/Olympus'", "taskpack.toml: timezone: unknown time zone 'Mars/Olympus' "
                                  "(use an IANA name such as 'UTC' or 'Europe/Berlin')"),
    ("include = 'x'", "taskpack.toml: include: expected a list of strings, got a string"),
    ("tasks = 1", "taskpack.toml: tasks: expected a table, got an integer"),
    ("[tasks]\nx = 1", "taskpack.toml: tasks.x: expected a table, got an integer"),
    ("[tasks.a]\ndescription = 1", "taskpack.toml: tasks.a.description: expected a string, "
                                   "got an integer"),
    ("[scheduled_tasks]\n'0 * * * *' = []", "taskpack.toml: scheduled_tasks.\"0 * * * *\": "
                                             "empty list of tasks"),
    ("[scheduled_tasks]\n'0 * * * *' = 5", "taskpack.toml: scheduled_tasks.\"0 * * * *\": "
                                            "expected a task name or a list of names, "
                                            "got an integer"),
    ("[server]\ntasks_api = 'yes'", "taskpack.toml: server.tasks_api: expected true or false, "
                                    "got a string"),
    ("[server]\nshutdown_grace = -1", "taskpack.toml: server.shutdown_grace: must be at least 0, "
                                      "got -1"),
    ("[vercel]\npython = '3.9'", "taskpack.toml: vercel.python: expected one of '3.12', "
                                 "'3.13', '3.14', got '3.9'"),
])
def test_key_errors(make_project: MakeProject, text: str, message: str) -> None:
    assert error_of(make_project({"taskpack.toml": text})) == message


def test_pyproject_errors_name_the_tool_table(make_project: MakeProject) -> None:
    root = make_project({"pyproject.toml": "[tool.taskpack]\nscheduledTasks = {}\n"})
    assert error_of(root) == (
        "pyproject.toml: tool.taskpack.scheduledTasks: unknown key "
        "(did you mean 'scheduled_tasks'?)"
    )


def test_unknown_key_without_close_match_lists_known_keys(make_project: MakeProject) -> None:
    message = error_of(make_project({"taskpack.toml": "[vercel]\nzzz = 1"}))
    assert message.startswith("taskpack.toml: vercel.zzz: unknown key (known: tasks_api,")


def test_invalid_toml_reports_line_and_column(make_project: MakeProject) -> None:
    message = error_of(make_project({"taskpack.toml": "preset = 'server'\ntasks_dir = \n"}))
    assert message.startswith("taskpack.toml: invalid TOML: ")
    assert "line 2, column 13" in message


def test_invalid_yaml_reports_line_and_column(make_project: MakeProject) -> None:
    message = error_of(make_project({"taskpack.yaml": "preset: server\n  bad: [\n"}))
    assert message.startswith("taskpack.yaml: invalid YAML: ")
    assert "(at line 2, column 6)" in message


def test_yaml_that_is_not_a_table(make_project: MakeProject) -> None:
    assert error_of(make_project({"taskpack.yml": "- a\n- b\n"})) == (
        "taskpack.yml: expected a table of settings, got a list"
    )


def test_duplicate_names_in_a_schedule_list_are_kept_once(make_project: MakeProject) -> None:
    root = make_project({"taskpack.toml": "[scheduled_tasks]\n'@daily' = ['a', 'a']"})
    config = load_config(root)
    assert config.scheduled_tasks == (("@daily", ("a",)),)
