"""Discovery: names from paths, skip rules, descriptions without importing."""

from __future__ import annotations

import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskpack.builder.errors import ConfigError
from taskpack.builder.scan import NAME_RE, scan_tasks, task_name
from tests.helpers import MakeProject, task_source, write_files


def names(root: Path, tasks_dir: str = "tasks") -> dict[str, str]:
    return {task.name: task.path for task in scan_tasks(root, tasks_dir)}


def test_names_join_folders_with_colons(make_project: MakeProject) -> None:
    root = make_project({
        "tasks/db/migrate.py": task_source(),
        "tasks/echo/payload.py": task_source(),
        "tasks/top.py": task_source(),
        "tasks/a/b/c.py": task_source(),
    })
    assert names(root) == {
        "a:b:c": "tasks/a/b/c.py",
        "db:migrate": "tasks/db/migrate.py",
        "echo:payload": "tasks/echo/payload.py",
        "top": "tasks/top.py",
    }


def test_private_hidden_and_non_python_files_are_skipped(make_project: MakeProject) -> None:
    root = make_project({
        "tasks/db/__init__.py": "",
        "tasks/db/_helpers.py": "",
        "tasks/_internal/x.py": "",
        "tasks/.hidden/x.py": "",
        "tasks/.secret.py": "",
        "tasks/notes.txt": "",
        "tasks/db/migrate.py": task_source(),
    })
    assert names(root) == {"db:migrate": "tasks/db/migrate.py"}


def test_missing_tasks_dir_means_no_tasks(make_project: MakeProject) -> None:
    assert names(make_project({"README": ""})) == {}


def test_descriptions_come_from_the_literal_then_the_docstring(make_project: MakeProject) -> None:
    root = make_project({
        "tasks/literal.py": task_source("From the literal"),
        "tasks/doc.py": '''
            """From the docstring.

            More text.
            """
            from taskpack import define_task

            @define_task
            def run(event):
                return 1
        ''',
        "tasks/call.py": '''
            import taskpack as tp

            def work(event):
                return 1

            task = tp.define_task(run=work, description="From a call")
        ''',
        "tasks/alias.py": '''
            from taskpack import define_task as dt

            @dt(description="Through an alias")
            def run(event):
                return 1
        ''',
        "tasks/none.py": task_source().replace('description=""', ""),
    })
    found = {task.name: task.description for task in scan_tasks(root, "tasks")}
    assert found == {
        "alias": "Through an alias",
        "call": "From a call",
        "doc": "From the docstring.",
        "literal": "From the literal",
        "none": "",
    }


def test_scanning_never_imports(make_project: MakeProject, tmp_path: Path) -> None:
    marker = tmp_path / "imported"
    root = make_project({"tasks/side.py": f"open({str(marker)!r}, 'w').close()\n"
                         + task_source("x")})
    assert names(root) == {"side": "tasks/side.py"}
    assert not marker.exists()


def test_syntax_error_names_file_and_line(make_project: MakeProject) -> None:
    root = make_project({"tasks/bad.py": "x = 1\ndef broken(:\n"})
    with pytest.raises(ConfigError) as info:
        scan_tasks(root, "tasks")
    assert str(info.value).startswith("tasks/bad.py:2: syntax error: ")


def test_two_tasks_in_one_file_name_both(make_project: MakeProject) -> None:
    root = make_project({"tasks/two.py": '''
        from taskpack import define_task

        @define_task
        def first(event): ...

        second = define_task(run=lambda e: None)
    '''})
    with pytest.raises(ConfigError) as info:
        scan_tasks(root, "tasks")
    assert str(info.value) == (
        "tasks/two.py: defines more than one task (first, second); keep one per file"
    )


def test_invalid_name_names_the_file(make_project: MakeProject) -> None:
    root = make_project({"tasks/has space.py": task_source()})
    with pytest.raises(ConfigError) as info:
        scan_tasks(root, "tasks")
    assert str(info.value) == (
        "tasks/has space.py: 'has space' is not a valid task name (use letters, digits, "
        "'_' and '-', folders joined with ':')"
    )


def test_names_colliding_after_normalisation(make_project: MakeProject) -> None:
    root = make_project({"tasks/db/migrate.py": task_source(),
                         "tasks/db:migrate.py": task_source()})
    with pytest.raises(ConfigError) as info:
        scan_tasks(root, "tasks")
    assert str(info.value) == (
        "tasks/db:migrate.py: task name 'db:migrate' collides with tasks/db/migrate.py "
        "('db:migrate')"
    )


def test_names_colliding_by_case(make_project: MakeProject) -> None:
    root = make_project({"tasks/Report.py": task_source(), "tasks/report.py": task_source()})
    with pytest.raises(ConfigError, match=r"collides with tasks/Report\.py"):
        scan_tasks(root, "tasks")


def test_undecodable_source_is_a_config_error(make_project: MakeProject) -> None:
    root = make_project({})
    (root / "tasks").mkdir()
    (root / "tasks" / "latin.py").write_bytes(b"# \xff\xfe\nx = '\xe9'\n")
    with pytest.raises(ConfigError, match=r"^tasks/latin\.py"):
        scan_tasks(root, "tasks")


segment = st.text(string.ascii_letters + string.digits + "_-", min_size=1, max_size=12).filter(
    lambda s: not s.startswith("_")
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(segment, min_size=1, max_size=4))
def test_valid_paths_round_trip_to_names(tmp_path_factory: pytest.TempPathFactory,
                                         parts: list[str]) -> None:
    rel = "/".join(parts) + ".py"
    name = task_name(rel)
    assert NAME_RE.match(name)
    assert name.replace(":", "/") + ".py" == rel
    root = write_files(tmp_path_factory.mktemp("p"), {f"tasks/{rel}": task_source()})
    assert names(root) == {name: f"tasks/{rel}"}


filename = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"),
    min_size=1, max_size=20,
).filter(lambda s: s not in (".", ".."))


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stems=st.lists(filename, min_size=1, max_size=3, unique=True))
def test_no_scan_crashes_on_arbitrary_file_names(tmp_path_factory: pytest.TempPathFactory,
                                                 stems: list[str]) -> None:
    root = tmp_path_factory.mktemp("p")
    tasks = root / "tasks"
    tasks.mkdir()
    for stem in stems:
        try:
            (tasks / f"{stem}.py").write_text(task_source(), encoding="utf-8")
        except OSError:  # e.g. a name the file system refuses as too long
            continue
    try:
        found = scan_tasks(root, "tasks")
    except ConfigError:
        return
    for task in found:
        assert NAME_RE.match(task.name)
