"""Shared fixtures: throwaway projects on disk."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import MakeProject, copy_example, write_files
from tests.pg import fresh_database


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
