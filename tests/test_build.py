"""``taskpack build``: the pipeline, its record, determinism, atomicity and
its errors, driven through the CLI in-process."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest
import tomlkit
from click.testing import CliRunner

from taskpack import __version__
from taskpack.builder.cli import main
from tests.helpers import MakeProject, task_source


def build(root: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["build", "--root", str(root), *args],
                                env={"TASKPACK_PRESET": "", **(env or {})})
    return result.exit_code, result.stdout, result.stderr


def snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file and folder under ``folder`` with its content hash and mode."""
    return {
        path.relative_to(folder).as_posix(): (
            hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir",
            stat.S_IMODE(path.stat().st_mode),
        )
        for path in sorted(folder.rglob("*"))
    }


def test_build_record_and_summary(basic_example: Path) -> None:
    code, out, err = build(basic_example)
    assert (code, err) == (0, "")
    output = basic_example / ".output"
    record = json.loads((output / "taskpack.json").read_text())
    assert record["preset"] == "server"
    assert record["taskpack_version"] == __version__
    assert list(record["tasks"]) == ["cms:update", "db:migrate", "echo:payload", "report:daily"]
    assert record["tasks"]["report:daily"] == {"description": "Build the daily report",
                                               "handler": "jobs/report.py"}
    assert record["schedules"][0] == {"cron": "* * * * *", "tasks": ["cms:update"],
                                      "written": ["* * * * *"]}
    files = sorted(p.relative_to(output).as_posix() for p in output.rglob("*") if p.is_file())
    assert sorted([*record["files"], "taskpack.json"]) == files
    for rel, digest in record["files"].items():
        assert hashlib.sha256((output / rel).read_bytes()).hexdigest() == digest
    assert "server/project/jobs/record.py" in record["files"]
    assert "server/index.py" in record["files"]
    assert "Built 4 task(s) with preset `server`" in out
    assert "  0 6 * * MON-FRI  report:daily, cms:update" in out
    assert "python " in out and "server/index.py" in out


def test_json_output(basic_example: Path, tmp_path: Path) -> None:
    code, out, _ = build(basic_example, "--preset", "node_cluster", "--output",
                         str(tmp_path / "out"), "--json")
    assert code == 0
    data = json.loads(out)
    assert data["preset"] == "server_cluster"
    assert data["output"] == str(tmp_path / "out")
    assert any("WORKERS=" in step for step in data["next_steps"])


@pytest.mark.parametrize("preset", ["server", "server_cluster", "asgi", "cloudflare_module",
                                    "vercel"])
def test_next_steps_set_the_token_when_the_task_api_is_on(make_project: MakeProject,
                                                           tmp_path: Path, preset: str) -> None:
    """With the task API on, a self-hosted server refuses to start without
    TASKPACK_TASKS_TOKEN, so the printed command must set it; the platforms
    answer 500 until their secret exists, so the steps say to add it."""
    table = {"cloudflare_module": "cloudflare", "vercel": "vercel"}.get(preset, "server")
    steps = {}
    for api in (True, False):
        root = make_project({"tasks/a.py": task_source(),
                             "taskpack.toml": f"[{table}]\ntasks_api = {str(api).lower()}\n"})
        code, out, err = build(root, "--preset", preset, "--output", str(tmp_path / f"{api}"),
                               "--json")
        assert code == 0, err
        steps[api] = json.loads(out)["next_steps"]
    assert any("TASKPACK_TASKS_TOKEN" in step for step in steps[True])
    assert not any("TASKPACK_TASKS_TOKEN" in step for step in steps[False])


def test_vercel_steps_link_the_project_root_not_the_output(make_project: MakeProject,
                                                           tmp_path: Path) -> None:
    """A link made inside the output is lost at the next build (README): the
    steps link the project root (whose link the build copies), and only
    while it is not linked."""
    root = make_project({"tasks/a.py": task_source()})
    code, out, err = build(root, "--preset", "vercel", "--json")
    assert code == 0, err
    steps = json.loads(out)["next_steps"]
    link = next(i for i, step in enumerate(steps) if step.startswith("vercel link"))
    assert link < steps.index(next(s for s in steps if s.startswith("cd ")))
    (root / ".vercel").mkdir()
    (root / ".vercel" / "project.json").write_text('{"projectId": "p", "orgId": "o"}')
    code, out, err = build(root, "--preset", "vercel", "--json")
    assert code == 0, err
    assert not any(step.startswith("vercel link") for step in json.loads(out)["next_steps"])


def test_two_builds_are_byte_identical(basic_example: Path, tmp_path: Path) -> None:
    old_umask = os.umask(0o077)
    try:
        assert build(basic_example, "--output", str(tmp_path / "one"))[0] == 0
    finally:
        os.umask(old_umask)
    (basic_example / "jobs" / "record.py").chmod(0o755)
    assert build(basic_example, "--output", str(tmp_path / "two"))[0] == 0
    first, second = snapshot(tmp_path / "one"), snapshot(tmp_path / "two")
    assert first == second
    assert {mode for _, mode in first.values()} == {0o644, 0o755}
    # Rebuilding in place gives the same bytes again.
    assert build(basic_example, "--output", str(tmp_path / "one"))[0] == 0
    assert snapshot(tmp_path / "one") == first


def test_failed_build_leaves_previous_output_untouched(basic_example: Path) -> None:
    assert build(basic_example)[0] == 0
    before = snapshot(basic_example / ".output")
    config_path = basic_example / "taskpack.toml"
    config = tomlkit.parse(config_path.read_text())
    config["scheduled_tasks"]["61 * * * *"] = "db:migrate"  # type: ignore[index]
    config_path.write_text(tomlkit.dumps(config))
    code, _, err = build(basic_example)
    assert code == 2
    assert err.startswith('error: taskpack.toml: scheduled_tasks."61 * * * *": ')
    assert len(err.splitlines()) == 1
    assert snapshot(basic_example / ".output") == before
    assert not [p for p in basic_example.iterdir() if p.name.startswith(".taskpack-build-")]


def test_preset_sources(basic_example: Path, tmp_path: Path) -> None:
    out = str(tmp_path / "out")
    record = tmp_path / "out" / "taskpack.json"
    assert build(basic_example, "--output", out, env={"TASKPACK_PRESET": "asgi"})[0] == 0
    assert json.loads(record.read_text())["preset"] == "asgi"
    assert (tmp_path / "out" / "server" / "app.py").is_file()
    assert build(basic_example, "--output", out, "--preset", "server",
                 env={"TASKPACK_PRESET": "asgi"})[0] == 0
    assert json.loads(record.read_text())["preset"] == "server"
    assert not (tmp_path / "out" / "server" / "app.py").exists()


def test_unknown_preset(basic_example: Path) -> None:
    code, _, err = build(basic_example, "--preset", "vercel-edge")
    assert code == 2
    assert err.startswith("error: --preset: unknown preset 'vercel-edge' (known: ")
    assert "server_cluster (alias node_cluster" in err


def test_unknown_preset_in_config(make_project: MakeProject) -> None:
    root = make_project({"tasks/a.py": task_source(), "taskpack.toml": 'preset = "nope"\n'})
    code, _, err = build(root)
    assert code == 2
    assert err.startswith("error: taskpack.toml: preset: unknown preset 'nope' (known: ")


def test_unknown_preset_from_env(make_project: MakeProject) -> None:
    root = make_project({"tasks/a.py": task_source()})
    code, _, err = build(root, env={"TASKPACK_PRESET": "nope"})
    assert code == 2
    assert err.startswith("error: TASKPACK_PRESET: unknown preset 'nope'")


@pytest.mark.parametrize(("output", "message"), [
    ("tasks/out", "is inside the tasks folder tasks/; its files would become tasks"),
    (".", "is the project root"),
    ("..", "contains the project root"),
])
def test_bad_output_dirs(make_project: MakeProject, output: str, message: str) -> None:
    root = make_project({"tasks/a.py": task_source()})
    code, _, err = build(root, "--output", str(root / output))
    assert code == 2
    assert err.startswith("error: --output: ") and message in err
    assert not (root / "tasks" / "out").exists()


def test_bad_output_dir_in_config(make_project: MakeProject) -> None:
    root = make_project({"tasks/a.py": task_source(), "taskpack.toml": 'output_dir = "tasks"\n'})
    code, _, err = build(root)
    assert code == 2
    assert err.startswith("error: taskpack.toml: output_dir: ")


def test_output_dir_not_written_by_a_build_is_refused(make_project: MakeProject,
                                                     tmp_path: Path) -> None:
    root = make_project({"tasks/a.py": task_source()})
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    code, _, err = build(root, "--output", str(precious))
    assert code == 2
    assert "is not empty and holds no taskpack.json" in err
    assert (precious / "notes.txt").read_text() == "keep me"


def test_output_dir_that_is_a_file(make_project: MakeProject, tmp_path: Path) -> None:
    root = make_project({"tasks/a.py": task_source()})
    (tmp_path / "file").write_text("")
    code, _, err = build(root, "--output", str(tmp_path / "file" / "out"))
    assert code == 2
    assert err.startswith("error: --output: cannot write the output folder ")


def test_unwritable_output_dir(make_project: MakeProject) -> None:
    # /proc refuses new entries even to root, so this holds in any container.
    root = make_project({"tasks/a.py": task_source()})
    code, _, err = build(root, "--output", "/proc/taskpack-out")
    assert code == 2
    assert err.startswith("error: --output: cannot write the output folder /proc/taskpack-out")


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file modes")
def test_read_only_parent(make_project: MakeProject, tmp_path: Path) -> None:
    root = make_project({"tasks/a.py": task_source()})
    parent = tmp_path / "ro"
    parent.mkdir(mode=0o555)
    code, _, err = build(root, "--output", str(parent / "out"))
    assert code == 2
    assert "cannot write the output folder" in err


def test_task_names_colliding_after_normalisation(make_project: MakeProject) -> None:
    root = make_project({"tasks/db/Migrate.py": task_source(), "tasks/db/migrate.py":
                         task_source()})
    code, _, err = build(root)
    assert code == 2
    assert "collides with" in err


def test_internal_error_is_one_line_with_exit_1(basic_example: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # The one place an internal failure is injected: emit raising a bug.
    from taskpack.presets import server

    def broken(project: object, out: Path) -> None:
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(server, "emit", broken)
    from taskpack import presets
    presets._by_name.cache_clear()
    try:
        code, _, err = build(basic_example)
        assert code == 1
        assert err == ("error: internal error while building: ZeroDivisionError: boom "
                       "(run `taskpack --debug build` for the traceback)\n")
        result = CliRunner().invoke(main, ["--debug", "build", "--root", str(basic_example)])
        assert result.exit_code == 1
        assert "Traceback" in result.stderr
    finally:
        monkeypatch.undo()
        presets._by_name.cache_clear()
    assert not (basic_example / ".output").exists()


def test_a_project_without_tasks_builds_with_a_warning(make_project: MakeProject) -> None:
    root = make_project({"lib/helpers.py": "X = 1\n"})
    code, _, err = build(root)
    assert code == 0, err
    assert ("warning: no tasks: nothing under tasks/ and none in taskpack.toml "
            "(is --root the project folder?)") in err
    assert (root / ".output" / "taskpack.json").is_file()
    code, _, err = build(make_project({"tasks/a.py": task_source()}))
    assert code == 0 and "no tasks" not in err
