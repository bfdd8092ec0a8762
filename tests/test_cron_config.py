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


def test_evaluating_schedules_imports_only_the_standard_library() -> None:
    """The bundles carry taskpack.cron and evaluate at start: nothing it
    imports may come from outside the standard library (croniter did, and
    its import was about 30 ms of every server's start)."""
    code = """if True:
        import sys, sysconfig
        from datetime import UTC, datetime
        before = set(sys.modules)
        from taskpack.cron import CronExpr
        for text in ("0 12 * * mon-fri", "*/5 * L * *", "0 0 * * FRI#L", "0 0 1W,L * *"):
            CronExpr.parse(text).next_after(datetime(2026, 3, 1, tzinfo=UTC), "Europe/Paris")
        stdlib = sysconfig.get_paths()["stdlib"]
        foreign = sorted(name for name in set(sys.modules) - before
                         if not name.startswith("taskpack")
                         and (getattr(sys.modules[name], "__file__", None) or stdlib)
                         .startswith(stdlib) is False)
        assert not foreign, foreign
    """
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
