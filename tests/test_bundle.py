"""The shared bundle steps: which files a bundle carries, its runtime copy,
manifest and requirements."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from taskpack.builder.bundle import (
    copy_runtime,
    glob_regex,
    project_requirements,
    project_sources,
    runtime_requirements,
    write_bundle,
)
from taskpack.builder.errors import ConfigError
from taskpack.builder.project import load_project
from taskpack.layout import load_registry
from tests.helpers import MakeProject, task_source

LAYOUT = {
    "tasks/a.py": task_source("A"),
    "tasks/test_b.py": task_source("a task whose name starts with test_"),
    "tasks/tests/c.py": task_source("a task in a tests/ folder"),
    "tasks/data.json": "{}",
    "tasks/_helper.py": "X = 1\n",
    "tasks/.hidden.py": "",
    "lib/util.py": "def f(): return 1\n",
    "lib/__init__.py": "",
    "lib/readme.txt": "not python",
    "main.py": "",
    "tests/test_a.py": "",
    "lib/test_util.py": "",
    "lib/util_test.py": "",
    "conftest.py": "",
    "test/x.py": "",
    ".venv/lib/x.py": "",
    "env/pyvenv.cfg": "",
    "env/lib/y.py": "",
    "node_modules/z.py": "",
    "lib/__pycache__/util.cpython-311.pyc": "",
    ".output/server/index.py": "",
    "dist/taskpack.json": "{}",
    "dist/server/index.py": "",
}


def test_default_rule(make_project: MakeProject) -> None:
    root = make_project(LAYOUT)
    assert project_sources(load_project(root)) == [
        "lib/__init__.py",
        "lib/util.py",
        "main.py",
        "tasks/_helper.py",
        "tasks/a.py",
        "tasks/data.json",
        "tasks/test_b.py",
        "tasks/tests/c.py",
    ]


def test_include_and_exclude(make_project: MakeProject) -> None:
    root = make_project({**LAYOUT, "taskpack.toml": """
        include = ["lib/*.txt", "tests/**"]
        exclude = ["main.py", "lib/**/__init__.py", "tests/test_*.py"]
    """})
    sources = project_sources(load_project(root))
    assert "lib/readme.txt" in sources
    assert "main.py" not in sources
    assert "lib/__init__.py" not in sources
    assert not [s for s in sources if s.startswith("tests/")]


def test_exclude_a_folder(make_project: MakeProject) -> None:
    root = make_project({**LAYOUT, "taskpack.toml": 'exclude = ["lib"]\n'})
    assert not [s for s in project_sources(load_project(root)) if s.startswith("lib/")]


def test_excluding_a_handler_is_an_error(make_project: MakeProject) -> None:
    root = make_project({**LAYOUT, "taskpack.toml": 'exclude = ["tasks/a.py"]\n'})
    with pytest.raises(ConfigError, match=r"taskpack.toml: exclude: excludes tasks/a.py, "
                                          r"the handler of task 'a'"):
        project_sources(load_project(root))


def test_include_matching_nothing_is_an_error(make_project: MakeProject) -> None:
    root = make_project({**LAYOUT, "taskpack.toml": 'include = ["data/*.csv"]\n'})
    with pytest.raises(ConfigError, match=r"include: 'data/\*.csv' matches no file"):
        project_sources(load_project(root))


def test_include_outside_the_root_is_an_error(make_project: MakeProject) -> None:
    root = make_project({**LAYOUT, "taskpack.toml": 'include = ["../secrets/*"]\n'})
    with pytest.raises(ConfigError, match=r"include: '\.\./secrets/\*' must be a glob relative"):
        project_sources(load_project(root))


@pytest.mark.parametrize(("pattern", "path", "matches"), [
    ("*.py", "main.py", True),
    ("*.py", "lib/main.py", False),
    ("**/*.py", "main.py", True),
    ("**/*.py", "lib/deep/main.py", True),
    ("lib/**", "lib/a/b.txt", True),
    ("lib/?.py", "lib/a.py", True),
    ("lib/[ab].py", "lib/c.py", False),
    ("lib/[!ab].py", "lib/c.py", True),
    ("a.b", "axb", False),
])
def test_glob_regex(pattern: str, path: str, matches: bool) -> None:
    assert bool(glob_regex(pattern).match(path)) is matches


def test_runtime_copy_has_only_runtime_modules(tmp_path: Path) -> None:
    written = copy_runtime(tmp_path)
    names = {Path(rel).name for rel in written}
    assert {"__init__.py", "registry.py", "server.py", "cluster.py", "layout.py"} <= names
    assert not {"cli.py", "bundle.py", "config.py"} & names
    for rel in written:
        source = (tmp_path / rel).read_text(encoding="utf-8")
        for forbidden in ("import click", "import jinja2", "import tomlkit", "import yaml",
                          "taskpack.builder", "taskpack.presets"):
            assert forbidden not in source, (rel, forbidden)


def test_runtime_requirements_come_from_package_metadata() -> None:
    lines = runtime_requirements(["uvicorn", "httptools"])
    assert lines == ["httptools==0.9.0", "uvicorn>=0.30"]
    with pytest.raises(RuntimeError):
        runtime_requirements(["flask"])


def test_project_requirements_txt(make_project: MakeProject) -> None:
    root = make_project({"requirements.txt": """
        # comment
        httpx>=0.27  # trailing comment
        taskpack==0.1.0
        TaskPack[server]
        --extra-index-url https://example.org/simple

        pydantic[email]>=2
    """})
    assert project_requirements(load_project(root)) == (
        "requirements.txt",
        ["httpx>=0.27", "--extra-index-url https://example.org/simple", "pydantic[email]>=2"],
    )


def test_project_dependencies_from_pyproject(make_project: MakeProject) -> None:
    root = make_project({"pyproject.toml": """
        [project]
        name = "myapp"
        dependencies = ["httpx>=0.27", "taskpack"]
    """})
    assert project_requirements(load_project(root)) == ("pyproject.toml", ["httpx>=0.27"])


@pytest.mark.parametrize("line", ["-r base.txt", "-e .", "./vendor/pkg", "-cconstraints.txt"])
def test_uninstallable_requirement_lines(make_project: MakeProject, line: str) -> None:
    root = make_project({"requirements.txt": f"httpx\n{line}\n"})
    with pytest.raises(ConfigError, match=r"^requirements.txt:2: "):
        project_requirements(load_project(root))


def test_bundle_loads_lazily_and_runs(make_project: MakeProject, tmp_path: Path) -> None:
    root = make_project({
        "tasks/uses_lib.py": """
            from lib.util import f
            from taskpack import define_task

            @define_task
            def run(event):
                return {"f": f(), "payload": event.payload}
        """,
        "lib/__init__.py": "",
        "lib/util.py": "def f():\n    return 42\n",
        "requirements.txt": "httpx\n",
    })
    base = tmp_path / "bundle"
    written = write_bundle(load_project(root), base, requirements=["uvicorn"])
    assert "project/tasks/uses_lib.py" in written and "requirements.txt" in written
    assert (base / "requirements.txt").read_text().splitlines()[2:] == [
        "uvicorn>=0.30", "# from the project's requirements.txt", "httpx"]
    registry = load_registry(base)
    assert list(registry.entries) == ["uses_lib"]
    assert not registry.is_loaded("uses_lib")
    assert asyncio.run(registry.run("uses_lib", {"x": 1})) == {"f": 42, "payload": {"x": 1}}


def test_server_bundles_carry_checked_bytecode_of_the_runtime(basic_example: Path,
                                                              tmp_path: Path) -> None:
    """Every runtime module and the manifest have a checked-hash .pyc for
    this interpreter (a start that cannot write bytecode compiles nothing);
    builds stay byte-identical."""
    import importlib.util

    from taskpack.builder.build import build

    first = build(basic_example, preset="server", output=tmp_path / "a").output / "server"
    again = build(basic_example, preset="server", output=tmp_path / "b").output / "server"
    sources = [*sorted((first / "taskpack").rglob("*.py")), first / "taskpack_manifest.py"]
    tag = sys.implementation.cache_tag
    for source in sources:
        cached = source.parent / "__pycache__" / f"{source.stem}.{tag}.pyc"
        data = cached.read_bytes()
        assert data[:4] == importlib.util.MAGIC_NUMBER
        assert int.from_bytes(data[4:8], "little") == 0b11  # hash-based, checked
        assert data[8:16] == importlib.util.source_hash(source.read_bytes())
        assert cached.read_bytes() == (again / cached.relative_to(first)).read_bytes()
