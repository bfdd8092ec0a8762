"""The resolved project: one immutable object every later step reads.

``load_project(root)`` reads the config, scans ``tasks_dir``, merges the
two and validates the result. Presets, the bundler, the CLI and the dev
server read only :class:`Project`; none of them touches config files or
scans folders again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .config import Config


def _frozen(mapping: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class TaskSpec:
    """One task of the project.

    ``handler`` is a root-relative POSIX path (``tasks/db/migrate.py``) or
    ``module:attr``; ``None`` when the task is listed in config without an
    implementation (it answers 501). ``source`` is the scanned file, if any.
    """

    name: str
    handler: str | None
    description: str = ""
    source: str | None = None
    options: Mapping[str, Any] = field(default_factory=_frozen)


@dataclass(frozen=True)
class Schedule:
    """A cron expression as written in config and the tasks it runs."""

    cron: str
    tasks: tuple[str, ...]


@dataclass(frozen=True)
class Project:
    """A project resolved from config and files, sorted by name."""

    root: Path
    config: Config
    tasks: tuple[TaskSpec, ...]
    schedules: tuple[Schedule, ...]

    @property
    def task_names(self) -> tuple[str, ...]:
        return tuple(task.name for task in self.tasks)

    def task(self, name: str) -> TaskSpec:
        """The task called ``name``; ``KeyError`` if there is none."""
        for task in self.tasks:
            if task.name == name:
                return task
        raise KeyError(name)

    def schedules_of(self, name: str) -> tuple[str, ...]:
        """The cron expressions that run ``name``."""
        return tuple(s.cron for s in self.schedules if name in s.tasks)

    def preset_options(self, family: str) -> Mapping[str, Any]:
        """The validated ``[family]`` table (``server``, ``cloudflare``, ``vercel``)."""
        return self.config.preset_options.get(family, _frozen())
