"""Shared fixtures: throwaway projects on disk."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import MakeProject, copy_example, write_files
from tests.pg import fresh_database


@pytest.fixture(autouse=True)
def forget_project_modules(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """After each test, forget the modules and ``sys.path`` entries that came
    from a project under pytest's temporary folders: one test's ``lib``
    package must not shadow the next test's (tasks are imported in-process).
    Modules of the package under test are kept, so their identity holds."""
    yield
    base = str(tmp_path_factory.getbasetemp())
    sys.path[:] = [entry for entry in sys.path if not entry.startswith(base)]
    for name, module in list(sys.modules.items()):
        places = [getattr(module, "__file__", None) or "", *getattr(module, "__path__", ())]
        if any(str(place).startswith(base) for place in places):
            del sys.modules[name]
    importlib.invalidate_caches()


@pytest.fixture
def make_project(tmp_path: Path) -> MakeProject:
    """A factory writing a project into a fresh folder and returning its root."""
    counter = iter(range(1_000_000))

    def make(files: dict[str, str]) -> Path:
        return write_files(tmp_path / f"project{next(counter)}", files)

    return make


@pytest.fixture
def basic_example(tmp_path: Path) -> Path:
    """A private copy of ``examples/basic``."""
    return copy_example(tmp_path / "basic")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """The URL of a fresh, empty PostgreSQL database (dropped after the test)."""
    with fresh_database() as url:
        yield url
