"""load_project: merging config-registered and scanned tasks, and its checks."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from taskpack.builder.errors import ConfigError
from taskpack.builder.manifest import build_manifest
from taskpack.builder.project import Schedule, TaskSpec, load_project
from tests.helpers import MakeProject, task_source


def error_of(root: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_project(root)
    return str(info.value)


def test_basic_example_resolves(basic_example: Path) -> None:
    project = load_project(basic_example)
    assert project.task_names == ("cms:update", "db:migrate", "echo:payload", "report:daily")
    assert project.task("report:daily") == TaskSpec(
        "report:daily", "jobs/report.py", "Build the daily report", source=None
    )
    assert project.schedules == (
        Schedule("* * * * *", ("cms:update",)),
        Schedule("0 * * * *", ("db:migrate",)),
        Schedule("0 6 * * MON-FRI", ("report:daily", "cms:update")),
    )


def test_project_is_immutable(basic_example: Path) -> None:
    project = load_project(basic_example)
    with pytest.raises(dataclasses.FrozenInstanceError):
        project.tasks = ()  # type: ignore[misc]
    with pytest.raises(TypeError):
        project.config.tasks["x"] = None  # type: ignore[index]


def test_config_handler_wins_over_the_scanned_file(make_project: MakeProject) -> None:
    root = make_project({
        "tasks/db/migrate.py": task_source("scanned"),
        "custom/migrate.py": task_source("custom"),
        "taskpack.toml": '[tasks."db:migrate"]\nhandler = "custom/migrate.py"\n',
    })
    task = load_project(root).task("db:migrate")
    assert (task.handler, task.description, task.source) == (
        "custom/migrate.py", "custom", "tasks/db/migrate.py")


def test_config_entry_without_handler_takes_the_scanned_one(make_project: MakeProject) -> None:
    root = make_project({
        "tasks/db/migrate.py": task_source("scanned"),
        "taskpack.toml": '[tasks."db:migrate"]\ndescription = "from config"\n',
    })
    task = load_project(root).task("db:migrate")
    assert (task.handler, task.description) == ("tasks/db/migrate.py", "from config")


def test_config_entry_with_neither_is_listed_without_handler(make_project: MakeProject) -> None:
    root = make_project({"taskpack.toml": '[tasks."later"]\ndescription = "soon"\n'})
    assert load_project(root).task("later") == TaskSpec("later", None, "soon")


def test_module_attr_handlers(make_project: MakeProject) -> None:
    root = make_project({
        "app/jobs.py": "def nightly(event):\n    return 1\n",
        "taskpack.toml": '[tasks.nightly]\nhandler = "app.jobs:nightly"\n'
                         '[tasks.stdlib]\nhandler = "json:dumps"\n',
    })
    project = load_project(root)
    assert project.task("nightly").handler == "app.jobs:nightly"
    assert project.task("stdlib").handler == "json:dumps"


@pytest.mark.parametrize(("handler", "message"), [
    ("../outside.py", "handler '../outside.py' is outside the project root"),
    ("missing.py", "handler file 'missing.py' does not exist"),
    ("not a handler", "handler 'not a handler' is neither a .py path nor 'module:attr'"),
    ("app.jobs:missing", "app/jobs.py defines no top-level 'missing'"),
    ("no_such_module_xyz:run", "module 'no_such_module_xyz' is neither in the project "
                               "nor installed"),
])
def test_bad_handlers(make_project: MakeProject, handler: str, message: str) -> None:
    root = make_project({
        "app/jobs.py": "x = 1\n",
        "taskpack.toml": f'[tasks."db:migrate"]\nhandler = "{handler}"\n',
    })
    assert error_of(root) == f'taskpack.toml: tasks."db:migrate".handler: {message}'


def test_schedule_naming_an_unknown_task(make_project: MakeProject) -> None:
    root = make_project({
        "tasks/db/migrate.py": task_source(),
        "tasks/cms/update.py": task_source(),
        "taskpack.toml": '[scheduled_tasks]\n"0 * * * *" = "db:cleanup"\n',
    })
    assert error_of(root) == (
        'taskpack.toml: scheduled_tasks."0 * * * *": unknown task \'db:cleanup\' '
        "(known: cms:update, db:migrate)"
    )


def test_invalid_config_task_name(make_project: MakeProject) -> None:
    root = make_project({"taskpack.toml": '[tasks."bad name"]\ndescription = "x"\n'})
    assert error_of(root) == (
        'taskpack.toml: tasks."bad name": not a valid task name (use letters, digits, '
        "'_' and '-', segments joined with ':')"
    )


def test_custom_tasks_dir(make_project: MakeProject) -> None:
    root = make_project({"jobs/a.py": task_source(), "taskpack.toml": 'tasks_dir = "jobs"\n'})
    assert load_project(root).task_names == ("a",)


def test_manifest_is_plain_sorted_data(basic_example: Path) -> None:
    manifest = build_manifest(load_project(basic_example))
    assert list(manifest["tasks"]) == sorted(manifest["tasks"])
    assert manifest["tasks"]["echo:payload"] == {
        "handler": "tasks/echo/payload.py", "description": "Echo the payload back.",
        "options": {},
    }
    assert manifest["schedules"][0] == {"cron": "* * * * *", "tasks": ["cms:update"]}
