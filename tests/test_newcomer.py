"""What a newcomer meets first: `taskpack init`, help, "did you mean", and
mistakes that must be loud at `task list` and `build` (issue 16)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from taskpack import Registry, set_registry
from taskpack.builder.cli import COMMANDS, main
from taskpack.builder.init_command import CONFIG, TASK
from taskpack.builder.preview import preview_env
from taskpack.http import HttpRequest, TaskApi, handle, loopback_only
from tests.helpers import REPO, MakeProject, task_source, write_files


@pytest.fixture(autouse=True)
def no_current_registry() -> Iterator[None]:
    yield
    set_registry(None)


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), prog_name="taskpack")
    return result.exit_code, result.stdout, result.stderr


# -- taskpack init -------------------------------------------------------------------


def test_init_scaffolds_a_project_that_runs(tmp_path: Path) -> None:
    root = tmp_path / "myapp"
    code, out, err = run("init", str(root))
    assert (code, err) == (0, "")
    assert "tasks/hello.py, taskpack.toml, .gitignore" in out
    assert (root / "tasks" / "hello.py").read_text() == TASK
    assert (root / "taskpack.toml").read_text() == CONFIG
    assert (root / ".gitignore").read_text().splitlines()[-2:] == [".taskpack/", ".output/"]
    code, out, _ = run("task", "list", "--root", str(root))
    assert (code, out) == (0, "hello  Say hello to someone.\n")
    code, out, _ = run("task", "run", "hello", "--payload", '{"name": "Ada"}', "--root",
                       str(root))
    assert (code, json.loads(out)) == (0, {"greeting": "Hello, Ada!"})


def test_every_commented_setting_of_the_scaffold_is_valid(tmp_path: Path) -> None:
    """Uncommenting the config's examples (schedule, options, [server])
    gives a project that loads, lists the schedule and builds."""
    root = tmp_path / "myapp"
    assert run("init", str(root))[0] == 0
    lines = []
    for line in CONFIG.splitlines():
        # "# key = value  # comment" and "# [table]" lines are settings.
        if re.match(r"^# (\[|\"|[a-z_]+ = )", line):
            line = line[2:]
        lines.append(line)
    (root / "taskpack.toml").write_text("\n".join(lines) + "\n")
    assert any(line.startswith('timezone = "UTC"') for line in lines)
    assert any(line.startswith('"0 * * * *" = "hello"') for line in lines)
    code, out, err = run("task", "list", "--root", str(root))
    assert (code, err) == (0, "")
    assert out.endswith("[0 * * * *]\n")
    code, _, err = run("build", "--root", str(root))
    assert code == 0, err


@pytest.mark.parametrize("existing", [
    {"taskpack.toml": "tasks_dir = 'jobs'\n"},
    {"taskpack.yaml": "tasks_dir: jobs\n"},
    {"pyproject.toml": "[tool.taskpack]\ntasks_dir = 'jobs'\n"},
    {"tasks/mine.py": task_source("mine")},
])
def test_init_refuses_an_existing_project_and_writes_nothing(
        tmp_path: Path, existing: dict[str, str]) -> None:
    root = write_files(tmp_path / "p", {**existing, ".gitignore": "venv/\n"})
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    code, out, err = run("init", str(root))
    assert (code, out) == (2, "")
    assert err.startswith(f"error: DIRECTORY: {root} already has a ")
    assert err.endswith("; nothing written\n") and err.count("\n") == 1
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before


def test_init_keeps_an_existing_gitignore(tmp_path: Path) -> None:
    root = write_files(tmp_path / "p", {".gitignore": "venv/\n/.output/",
                                         "pyproject.toml": "[project]\nname = 'x'\n"})
    assert run("init", str(root))[0] == 0
    assert (root / ".gitignore").read_text() == (
        "venv/\n/.output/\n# written by taskpack\n.taskpack/\n")


def test_an_empty_folder_suggests_init(tmp_path: Path) -> None:
    code, out, _ = run("task", "list", "--root", str(tmp_path))
    assert code == 0
    assert out == ("No tasks.\nWrite one under tasks/, or scaffold a project with "
                   "`taskpack init`.\n")


# -- help -------------------------------------------------------------------------------


def test_taskpack_alone_prints_help_and_exits_0() -> None:
    code, out, _ = run()
    assert code == 0
    assert out.startswith("Usage: taskpack [OPTIONS] [COMMAND] [ARGS]...")
    assert "  init " in out


@pytest.mark.parametrize("command", [[name] for name in COMMANDS]
                         + [["task", "list"], ["task", "run"]])
def test_dash_h_is_help_on_every_command(command: list[str]) -> None:
    code, out, _ = run(*command, "-h")
    assert code == 0
    assert out.startswith(f"Usage: taskpack {' '.join(command)} ")
    assert out == run(*command, "--help")[1]


# -- did you mean -----------------------------------------------------------------------


def test_unknown_task_names_get_a_suggestion(basic_example: Path) -> None:
    root = str(basic_example)
    code, _, err = run("task", "run", "db:migrat", "--root", root, "--local")
    assert (code, err) == (2, "error: Task `db:migrat` is not available! "
                              "Did you mean `db:migrate`?\n")
    code, _, err = run("runs", "db:migrat", "--root", root)
    assert (code, err) == (2, "error: NAME: unknown task 'db:migrat' "
                              "(did you mean 'db:migrate'?)\n")
    code, out, _ = run("runs", "db:migrate", "--root", root)  # known, never run
    assert code == 0 and out.startswith("No runs recorded for db:migrate")
    code, _, err = run("task", "run", "zzz", "--root", root, "--local")
    assert (code, err) == (2, "error: Task `zzz` is not available!\n")  # nothing close


def test_enqueue_suggests_the_closest_task(basic_example: Path) -> None:
    code, _, err = run("enqueue", "db:migrat", "--root", str(basic_example))
    assert (code, err) == (2, "error: Task `db:migrat` is not available! "
                              "Did you mean `db:migrate`?\n")


def test_http_404_suggests_the_closest_task(basic_example: Path) -> None:
    from taskpack.builder.manifest import build_manifest
    from taskpack.builder.project import load_project

    registry = Registry.from_manifest(build_manifest(load_project(basic_example)),
                                      basic_example)
    api = TaskApi(registry, policy=loopback_only())
    for path in ("/_nitro/tasks/echo:paylod", "/_nitro/tasks/echo:paylod/runs"):
        request = HttpRequest("GET", path, client_host="127.0.0.1")
        response = asyncio.run(handle(api, request))
        assert response.status == 404
        assert json.loads(response.body)["message"] == (
            "Task `echo:paylod` is not available! Did you mean `echo:payload`?")


def test_a_schedule_naming_a_typo_gets_a_suggestion(make_project: MakeProject) -> None:
    root = make_project({"tasks/db/migrate.py": task_source(),
                         "taskpack.toml": '[scheduled_tasks]\n"@daily" = "db:migrat"\n'})
    code, _, err = run("task", "list", "--root", str(root))
    assert (code, err) == (2, 'error: taskpack.toml: scheduled_tasks."@daily": unknown task '
                              "'db:migrat' (did you mean 'db:migrate'?)\n")


def test_a_missing_handler_file_gets_a_suggestion(make_project: MakeProject) -> None:
    root = make_project({"tasks/db/migrate.py": task_source(),
                         "taskpack.toml": '[tasks.x]\nhandler = "tasks/db/migrat.py"\n'})
    code, _, err = run("task", "list", "--root", str(root))
    assert (code, err) == (2, "error: taskpack.toml: tasks.x.handler: handler file "
                              "'tasks/db/migrat.py' does not exist (did you mean "
                              "'tasks/db/migrate.py'?)\n")


# -- loud mistakes ----------------------------------------------------------------------


def test_options_for_a_task_that_does_not_exist_warn(make_project: MakeProject) -> None:
    root = make_project({
        "tasks/db/migrate.py": task_source(),
        "taskpack.toml": '[tasks."db:migrat"]\nretries = 3\n\n'
                         '[tasks."billing:sync"]\ndescription = "Not written yet"\n',
    })
    warning = ('warning: taskpack.toml: tasks."db:migrat": no task file and no handler, so '
               "its options apply to nothing (did you mean 'db:migrate'?)\n")
    code, out, err = run("task", "list", "--root", str(root))
    assert (code, err) == (0, warning)  # the description-only entry is legal: no warning
    assert "billing:sync  Not written yet" in out
    code, _, err = run("build", "--root", str(root))
    assert code == 0 and err.startswith(warning)


def test_a_task_file_that_defines_no_task_is_an_error(make_project: MakeProject) -> None:
    root = make_project({
        "tasks/db/migrate.py": task_source(),
        "tasks/db/helpers.py": "def connect():\n    return None\n",
        "tasks/db/_private.py": "X = 1\n",  # skipped, as before
    })
    message = ("error: tasks/db/helpers.py: defines no task: decorate a function with "
               "@define_task (files and folders starting with '_' are not tasks)\n")
    for command in (["task", "list"], ["build"]):
        code, _, err = run(*command, "--root", str(root))
        assert (code, err) == (2, message)
    (root / "tasks/db/helpers.py").rename(root / "tasks/db/_helpers.py")
    assert run("task", "list", "--root", str(root))[0] == 0


def test_a_config_handler_file_must_define_a_task(make_project: MakeProject) -> None:
    root = make_project({"lib/util.py": "X = 1\n",
                         "taskpack.toml": '[tasks.x]\nhandler = "lib/util.py"\n'})
    code, _, err = run("task", "list", "--root", str(root))
    assert (code, err) == (2, "error: taskpack.toml: tasks.x.handler: lib/util.py defines no "
                              "task: decorate a function with @define_task (files and folders "
                              "starting with '_' are not tasks)\n")


@pytest.mark.parametrize(("options", "line", "message"), [
    ("timeout=0", 3, "define_task(timeout=...): must be a positive number of seconds, got 0"),
    ('description="x",\n             retries=-1', 4, "define_task(retries=...): must be >= 0, "
                                                     "got -1"),
    ('concurrency="fifo"', 3, "define_task(concurrency=...): expected one of 'dedupe', "
                              "'dedupe_payload', 'serial', 'parallel', got 'fifo'"),
    ('concurrency="dedupe", max_concurrency=2', 3,
     "define_task(max_concurrency=...): only applies to concurrency='parallel', not 'dedupe'"),
    ("retry=3", 3, "define_task(retry=...): unknown option (known: retries, timeout, "),
    ('timeout="30"', 3, "define_task(timeout=...): expected seconds as a number, got str"),
])
def test_invalid_literal_options_fail_at_list_and_build(
        make_project: MakeProject, options: str, line: int, message: str) -> None:
    source = f"from taskpack import define_task\n\n@define_task({options})\n" \
             "async def run(event):\n    return 1\n"
    root = make_project({"tasks/job.py": source})
    for command in (["task", "list"], ["build"]):
        code, _, err = run(*command, "--root", str(root))
        assert code == 2 and err.startswith(f"error: tasks/job.py:{line}: {message}")
        assert err.count("\n") == 1 and err.endswith("\n")
    assert not (root / ".output").exists()


def test_options_that_are_not_literals_are_left_to_the_import(
        make_project: MakeProject) -> None:
    source = ("from taskpack import RetryPolicy, define_task\n\nLIMIT = 0\n\n"
              "@define_task(timeout=LIMIT, retries=RetryPolicy(max_attempts=2), "
              "max_concurrency=2)\nasync def run(event):\n    return 1\n")
    root = make_project({"tasks/job.py": source})
    assert run("task", "list", "--root", str(root))[0] == 0
    code, _, err = run("task", "run", "job", "--root", str(root), "--local")
    assert (code, err) == (1, "error: task `job` failed: ValueError: task 'job': option "
                              "timeout: must be a positive number of seconds, got 0\n")


# -- preview, cron ----------------------------------------------------------------------


def test_preview_binds_loopback_unless_told() -> None:
    assert preview_env({}, None, None)["TASKPACK_HOST"] == "127.0.0.1"
    assert "TASKPACK_PORT" not in preview_env({}, None, None)
    assert "TASKPACK_HOST" not in preview_env({"HOST": "0.0.0.0"}, None, None)
    assert preview_env({"HOST": "0.0.0.0", "PORT": "80"}, "::1", 8080) == {
        "HOST": "0.0.0.0", "PORT": "80", "TASKPACK_HOST": "::1", "TASKPACK_PORT": "8080"}


@pytest.mark.parametrize("preset", ["cloudflare_module", "vercel"])
def test_preview_of_a_platform_build_points_at_its_readme(basic_example: Path,
                                                          preset: str) -> None:
    root = str(basic_example)
    assert run("build", "--preset", preset, "--root", root)[0] == 0
    code, _, err = run("preview", "--root", root)
    out = basic_example / ".output"
    assert (code, err) == (2, f"error: {out}: preset `{preset}` cannot be previewed locally; "
                              f"{out / 'README.md'} says how to deploy and test it\n")
    assert "## Deploy" in (out / "README.md").read_text()


def test_cron_uses_the_projects_timezone(make_project: MakeProject) -> None:
    root = make_project({"taskpack.toml": 'timezone = "Europe/Berlin"\n'})
    after = ("--after", "2026-07-01", "-n", "1", "--json")
    code, out, _ = run("cron", "0 12 * * *", "--root", str(root), *after)
    assert code == 0
    report = json.loads(out)
    assert (report["timezone"], report["next"][0]["utc"]) == ("Europe/Berlin",
                                                              "2026-07-01T10:00:00+00:00")
    code, out, _ = run("cron", "0 12 * * *", "--root", str(root), "--tz", "UTC", *after)
    assert json.loads(out)["next"][0]["utc"] == "2026-07-01T12:00:00+00:00"
    code, out, _ = run("cron", "0 12 * * *", "--root", str(root.parent), *after)
    assert json.loads(out)["timezone"] == "UTC"  # no project there


# -- make test's first run ----------------------------------------------------------------


def test_the_tool_download_line_names_what_it_downloads() -> None:
    spec = importlib.util.spec_from_file_location("install_tools", REPO / "scripts" /
                                                  "install_tools.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    line = module._pinned(REPO / "tools" / "cloudflare")
    assert re.fullmatch(r"pyodide@[\d.]+, wrangler@[\d.]+, workers-runtime-sdk==[\d.]+", line)


def test_readme_stays_small_and_its_links_resolve() -> None:
    readme = (REPO / "README.md").read_text()
    assert len(readme.encode()) <= 20 * 1024
    links = re.findall(r"\]\(((?:docs/)[^)#]*)", readme)
    assert links and [link for link in links if not (REPO / link).exists()] == []
    anchors = re.findall(r"\]\(#([^)]+)\)", readme)
    headings = {re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
                for line in readme.splitlines() if line.startswith("## ")}
    assert set(anchors) <= headings
