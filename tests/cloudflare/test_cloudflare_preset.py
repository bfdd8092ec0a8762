"""``taskpack build --preset cloudflare_module`` (and ``cloudflare_pages``):
what is written, what is refused, determinism and atomicity. The real
wrangler and Pyodide runs are in ``test_cloudflare_wrangler.py`` and
``test_cloudflare_pyodide.py``."""

from __future__ import annotations

import ast
import json
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from taskpack.builder.build import build
from taskpack.builder.cli import main
from taskpack.builder.errors import ConfigError
from taskpack.layout import PROJECT_DIR
from tests.helpers import MakeProject, task_source


def run_build(root: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["build", "--root", str(root), *args])
    return result.exit_code, result.stdout, result.stderr


def project_with(make_project: MakeProject, config: str, *tasks: str) -> Path:
    files = {"taskpack.toml": config}
    files.update({f"tasks/{name}.py": task_source() for name in tasks})
    return make_project(files)


def triggers_of(out: Path) -> dict[str, list[str]]:
    """The dispatch table generated into the entry."""
    tree = ast.parse((out / "src" / "entry.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "TRIGGERS":
            value: dict[str, list[str]] = ast.literal_eval(node.value)
            return value
    raise AssertionError("no TRIGGERS in entry.py")


def crons_of(out: Path) -> list[str]:
    crons: list[str] = tomllib.loads((out / "wrangler.toml").read_text())["triggers"]["crons"]
    return crons


def test_basic_example_layout(basic_example: Path) -> None:
    result = build(basic_example, preset="cloudflare_module")
    out = result.output
    assert out == basic_example / ".output"
    files = set(result.record["files"])
    assert {
        "wrangler.toml",
        "pyproject.toml",
        "README.md",
        "src/entry.py",
        "src/taskpack_manifest.py",
        "src/taskpack/__init__.py",
        "src/taskpack/cloudflare.py",
        f"src/{PROJECT_DIR}/tasks/cms/update.py",
        f"src/{PROJECT_DIR}/jobs/report.py",
    } <= files
    assert not any("python_modules" in f for f in files)
    assert result.record["preset"] == "cloudflare_module"

    wrangler = tomllib.loads((out / "wrangler.toml").read_text())
    assert wrangler["main"] == "src/entry.py"
    assert wrangler["name"] == "basic"
    assert wrangler["compatibility_flags"] == ["python_workers"]
    assert wrangler["compatibility_date"] == "2026-04-01"
    assert wrangler["triggers"]["crons"] == ["* * * * *", "0 * * * *", "0 6 * * MON-FRI"]
    # The dispatch table is keyed by exactly the emitted strings.
    assert triggers_of(out) == {
        "* * * * *": ["cms:update"],
        "0 * * * *": ["db:migrate"],
        "0 6 * * MON-FRI": ["report:daily", "cms:update"],
    }
    assert "tasks_api=False" in (out / "src" / "entry.py").read_text()
    pyproject = tomllib.loads((out / "pyproject.toml").read_text())
    assert pyproject["project"]["dependencies"] == []
    readme = (out / "README.md").read_text()
    assert "npx wrangler deploy" in readme
    assert "| `0 6 * * MON-FRI` | report:daily, cms:update |" in readme


def test_summary_prints_the_deploy_command(basic_example: Path) -> None:
    code, out, _ = run_build(basic_example, "--preset", "cloudflare-module")
    assert code == 0
    assert "npx wrangler deploy" in out


def test_weekday_digits_become_names(make_project: MakeProject) -> None:
    root = project_with(
        make_project,
        """
        [scheduled_tasks]
        "0 12 * * 1-5" = "weekdays"
        "0 0 * * 0" = "sundays"
        """,
        "weekdays",
        "sundays",
    )
    out = build(root, preset="cloudflare_module").output
    assert crons_of(out) == ["0 12 * * MON-FRI", "0 0 * * SUN"]
    assert triggers_of(out) == {"0 12 * * MON-FRI": ["weekdays"], "0 0 * * SUN": ["sundays"]}


def test_schedules_equal_in_meaning_share_one_trigger(make_project: MakeProject) -> None:
    root = project_with(
        make_project,
        """
        [scheduled_tasks]
        "0 0 * * 0" = "a"
        "0 0 * * SUN" = ["b", "a"]
        "@weekly" = "c"
        "0 * * * *" = "d"
        """,
        "a",
        "b",
        "c",
        "d",
    )
    out = build(root, preset="cloudflare_module").output
    assert crons_of(out) == ["0 0 * * SUN", "0 * * * *"]
    assert triggers_of(out) == {"0 0 * * SUN": ["a", "b", "c"], "0 * * * *": ["d"]}


def test_no_schedules_still_writes_empty_crons(make_project: MakeProject) -> None:
    root = project_with(make_project, "", "a")
    out = build(root, preset="cloudflare_module").output
    assert crons_of(out) == []
    assert triggers_of(out) == {}


def test_more_than_five_triggers_warns(make_project: MakeProject) -> None:
    lines = "\n".join(f'"{m} * * * *" = "a"' for m in range(6))
    root = project_with(make_project, f"[scheduled_tasks]\n{lines}\n", "a")
    code, _out, err = run_build(root, "--preset", "cloudflare_module")
    assert code == 0
    assert "warning: 6 cron triggers: Cloudflare's Free plan allows 5 (Paid: 250)" in err


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            'timezone = "Europe/Berlin"\n[scheduled_tasks]\n"0 9 * * *" = "a"\n',
            "error: taskpack.toml: timezone: Cloudflare runs schedules in UTC only",
        ),
        ('[scheduled_tasks]\n"*/10 * * * * *" = "a"\n', 'taskpack.toml: scheduled_tasks."*/10'),
        (
            '[cloudflare]\nname = "Bad_Name"\n',
            "taskpack.toml: cloudflare.name: 'Bad_Name' is not a Worker name",
        ),
        (
            '[cloudflare]\ncompatibility_date = "2026-13-01"\n',
            "taskpack.toml: cloudflare.compatibility_date: '2026-13-01' is not a date",
        ),
    ],
)
def test_platform_refusals_exit_2_naming_the_key(
    make_project: MakeProject, config: str, message: str
) -> None:
    root = project_with(make_project, config, "a")
    code, _out, err = run_build(root, "--preset", "cloudflare_module")
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert not (root / ".output").exists()


def test_utc_aliases_are_accepted(make_project: MakeProject) -> None:
    root = project_with(make_project, 'timezone = "Etc/UTC"\n', "a")
    assert build(root, preset="cloudflare_module").output.is_dir()


def test_python_modules_in_sources_is_refused(make_project: MakeProject) -> None:
    root = project_with(make_project, "", "a")
    (root / "python_modules" / "dep").mkdir(parents=True)
    (root / "python_modules" / "dep" / "__init__.py").write_text("")
    with pytest.raises(ConfigError, match=r'add exclude = \["python_modules"\]'):
        build(root, preset="cloudflare_module")
    (root / "taskpack.toml").write_text('exclude = ["python_modules"]\n')
    assert build(root, preset="cloudflare_module").output.is_dir()


def test_tasks_api_and_dependencies(make_project: MakeProject) -> None:
    root = project_with(
        make_project,
        '[cloudflare]\ntasks_api = true\nname = "api-worker"\n',
        "a",
    )
    (root / "requirements.txt").write_text("httpx>=0.27\n# a comment\ntaskpack\n")
    code, out_text, err = run_build(root, "--preset", "cloudflare_module")
    assert code == 0, err
    out = root / ".output"
    assert "tasks_api=True" in (out / "src" / "entry.py").read_text()
    pyproject = tomllib.loads((out / "pyproject.toml").read_text())
    assert pyproject["project"]["name"] == "api-worker"
    assert pyproject["project"]["dependencies"] == ["httpx>=0.27"]
    assert "uvx --from workers-py pywrangler deploy" in out_text
    readme = (out / "README.md").read_text()
    assert "uvx --from workers-py pywrangler deploy" in readme
    assert "npx wrangler secret put TASKPACK_TASKS_TOKEN" in readme


def test_user_wrangler_config_is_merged_with_notices(make_project: MakeProject) -> None:
    root = project_with(make_project, '[scheduled_tasks]\n"0 0 * * 0" = "a"\n', "a")
    (root / "wrangler.jsonc").write_text(
        '{\n  // mine\n  "name": "mine",\n  "main": "worker.py",\n  "vars": {"A": "1"},\n}\n'
    )
    code, _out, err = run_build(root, "--preset", "cloudflare_module")
    assert code == 0
    assert 'warning: wrangler.jsonc: main: replaced "worker.py" with "src/entry.py"' in err
    out = root / ".output"
    assert not (out / "wrangler.toml").exists()
    data = json.loads((out / "wrangler.jsonc").read_text())
    assert data["vars"] == {"A": "1"}
    assert data["triggers"] == {"crons": ["0 0 * * SUN"]}
    assert tomllib.loads((out / "pyproject.toml").read_text())["project"]["name"] == "mine"


def test_builds_are_byte_identical(basic_example: Path, tmp_path: Path) -> None:
    first = build(basic_example, preset="cloudflare_module", output=tmp_path / "one")
    second = build(basic_example, preset="cloudflare_module", output=tmp_path / "two")
    assert first.record == second.record
    for rel in [*first.record["files"], "taskpack.json"]:
        assert (first.output / rel).read_bytes() == (second.output / rel).read_bytes(), rel


def test_a_failed_build_leaves_the_previous_output(basic_example: Path) -> None:
    out = build(basic_example, preset="cloudflare_module").output
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    config = basic_example / "taskpack.toml"
    config.write_text(config.read_text() + '\n[cloudflare]\nname = "NOT VALID"\n')
    code, _out, err = run_build(basic_example, "--preset", "cloudflare_module")
    assert code == 2, err
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before


def test_cloudflare_pages_exits_2_pointing_to_cloudflare_module(basic_example: Path) -> None:
    code, out, err = run_build(basic_example, "--preset", "cloudflare_pages")
    assert code == 2
    assert out == ""
    assert "Cloudflare Pages has no cron triggers" in err
    assert "--preset cloudflare_module" in err
    assert not (basic_example / ".output").exists()
