"""Packaging: the wheel installs and works on its own, and the runtime that
is bundled into deployments imports without the build-time dependencies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.helpers import REPO, copy_example

BUILD_ONLY = ("click", "jinja2", "tomlkit", "yaml")


def test_runtime_imports_without_build_time_dependencies() -> None:
    code = f"""
import importlib, pkgutil, sys
for name in {BUILD_ONLY!r}:
    sys.modules[name] = None  # any import of it now fails
import taskpack
runtime = [m.name for m in pkgutil.iter_modules(taskpack.__path__) if not m.ispkg]
for name in runtime:
    importlib.import_module("taskpack." + name)
print(len(runtime))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False, cwd=REPO / "tests")
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) >= 4


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with taskpack installed from a freshly built wheel."""
    work = tmp_path_factory.mktemp("wheel")
    env = {**os.environ, "PIP_CACHE_DIR": str(REPO / ".cache" / "pip")}
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                    str(work / "dist"), str(REPO)], check=True, env=env)
    wheel = next((work / "dist").glob("taskpack-*.whl"))
    venv.create(work / "venv", with_pip=True)
    subprocess.run([str(work / "venv/bin/python"), "-m", "pip", "install", "-q", str(wheel)],
                   check=True, env=env)
    return work / "venv"


def test_wheel_holds_one_namespace(wheel_venv: Path) -> None:
    site = next(wheel_venv.glob("lib/python*/site-packages"))
    top_level = sorted(p.name for p in site.iterdir() if not p.name.endswith(".dist-info"))
    assert "taskpack" in top_level
    for generic in ("builder", "presets", "templates", "tests", "examples"):
        assert generic not in top_level
    for sub in ("builder/cli.py", "presets/__init__.py", "templates/__init__.py", "py.typed"):
        assert (site / "taskpack" / sub).is_file(), sub


def test_installed_cli_runs_the_example(wheel_venv: Path, tmp_path: Path) -> None:
    project = tmp_path / "basic"
    copy_example(project)
    taskpack = str(wheel_venv / "bin" / "taskpack")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([taskpack, *args], cwd=project, capture_output=True, text=True,
                              check=False)

    listing = run("task", "list", "--json")
    assert listing.returncode == 0, listing.stderr
    assert json.loads(listing.stdout)["tasks"]["db:migrate"] == {
        "description": "Run database migrations", "lastRun": None}
    echo = run("task", "run", "echo:payload", "--payload", '{"a":1}')
    assert (echo.returncode, echo.stdout) == (0, '{"result": {"a": 1}}\n')
    last = json.loads(run("task", "list", "--json").stdout)["tasks"]["echo:payload"]["lastRun"]
    assert (last["trigger"], last["outcome"]) == ("manual", "ok")
    missing = run("task", "run", "nope")
    assert (missing.returncode, missing.stderr) == (2, "error: Task `nope` is not available!\n")
    array = run("task", "run", "echo:payload", "--payload", "[1]")
    assert array.returncode == 2


def test_templates_package_is_found_by_importlib_resources(wheel_venv: Path) -> None:
    code = ("import importlib.resources as r; "
            "print(r.files('taskpack.templates').joinpath('__init__.py').is_file())")
    out = subprocess.run([str(wheel_venv / "bin/python"), "-c", code], capture_output=True,
                         text=True, check=True, cwd="/")
    assert out.stdout.strip() == "True"


def test_templates_package_is_found_in_the_editable_install() -> None:
    import importlib.resources

    assert importlib.resources.files("taskpack.templates").joinpath("__init__.py").is_file()
