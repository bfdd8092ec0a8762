"""Every ``scheduled_tasks`` key is parsed when the project loads; a bad one is
a ConfigError naming the key, and the CLI reports it in one line (exit 2)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from taskpack.builder.cli import main
from taskpack.builder.errors import ConfigError
from taskpack.builder.project import load_project
from tests.helpers import MakeProject, task_source


@pytest.mark.parametrize(("config", "line"), [
    ('[scheduled_tasks]\n"0 0 30 2 *" = "a"\n',
     'taskpack.toml: scheduled_tasks."0 0 30 2 *": this schedule never fires (e.g. a day '
     "that does not exist in the given month)"),
    ('[scheduled_tasks]\n"0 0 ? * MON" = "a"\n',
     "taskpack.toml: scheduled_tasks.\"0 0 ? * MON\": '?' is not supported: croner 10 "
     "treats '?' in a day field as 'every day' (so '0 0 ? * MON' runs daily), croner 11 as "
     "'*'. Write '*' instead."),
    ('[scheduled_tasks]\n"@reboot" = "a"\n',
     'taskpack.toml: scheduled_tasks."@reboot": @reboot is not a schedule'),
])
def test_bad_cron_key_is_a_config_error(make_project: MakeProject, config: str,
                                        line: str) -> None:
    root = make_project({"tasks/a.py": task_source(), "taskpack.toml": config})
    with pytest.raises(ConfigError) as caught:
        load_project(root)
    assert str(caught.value) == line
    result = CliRunner().invoke(main, ["task", "list", "--root", str(root)])
    assert result.exit_code == 2
    assert result.stderr == f"error: {line}\n"


def test_bad_cron_key_in_pyproject(make_project: MakeProject) -> None:
    root = make_project({
        "tasks/a.py": task_source(),
        "pyproject.toml": '[tool.taskpack.scheduled_tasks]\n"5/15 * * * *" = "a"\n',
    })
    with pytest.raises(ConfigError) as caught:
        load_project(root)
    assert str(caught.value).startswith(
        "pyproject.toml: tool.taskpack.scheduled_tasks.\"5/15 * * * *\": '5/15': a step "
        "needs '*' or a range before '/'")


def test_good_cron_keys_load_as_written(make_project: MakeProject) -> None:
    root = make_project({
        "tasks/a.py": task_source(),
        "taskpack.toml": '[scheduled_tasks]\n"0 12 * * mon-fri" = "a"\n"@daily" = ["a"]\n',
    })
    assert [s.cron for s in load_project(root).schedules] == ["0 12 * * mon-fri", "@daily"]


def test_loading_schedules_does_not_import_croniter(make_project: MakeProject) -> None:
    """Parsing needs no croniter (50 ms to import); only evaluation does."""
    root = make_project({
        "tasks/a.py": task_source(),
        "taskpack.toml": '[scheduled_tasks]\n"0 12 * * mon-fri" = "a"\n',
    })
    code = ("import sys; from pathlib import Path; "
            "from taskpack.builder.project import load_project; "
            f"load_project(Path({str(root)!r})); "
            "assert 'croniter' not in sys.modules, 'croniter imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
