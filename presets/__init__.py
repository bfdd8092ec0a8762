"""Deploy presets, one module each. Installed as ``taskpack.presets``.

A preset is a module in this package (its name not starting with ``_``)
that defines:

* ``name: str`` — the preset's name (``server``);
* ``aliases: tuple[str, ...]`` — other names it answers to (Nitro's
  ``node_server``);
* ``summary: str`` — what it emits, in one line (``taskpack build --help``);
* ``validate(project: Project) -> list[str]`` — checks the project can be
  deployed this way; returns warnings to print, raises
  :class:`~taskpack.builder.errors.ConfigError` to refuse, naming the key;
* ``emit(project: Project, out: Path) -> None`` — writes the bundle into the
  empty folder ``out`` (the build's staging folder; the build writes
  ``taskpack.json`` and moves it into place afterwards). Shared steps live
  in :mod:`taskpack.builder.bundle`;
* optionally ``next_steps(project: Project, out: Path) -> list[str]`` — the
  shell commands that run or deploy the output at ``out`` (its final
  location), for the build's summary;
* optionally ``preview(out: Path) -> list[str]`` — the command (argv) that
  ``taskpack preview`` runs for the output at ``out``; presets without it
  cannot be previewed;
* optionally ``cron_platform: CronPlatform`` — how its platform runs cron
  (:mod:`taskpack.builder.dialects`: ``CLOUDFLARE``, ``VERCEL``, ...);
  by default ``SCHEDULER``, taskpack's own scheduler, which runs every
  schedule as written. :meth:`Preset.deployed_schedules` and
  ``taskpack cron --preset`` both come from it;
* optionally ``deployed_schedules(project: Project) -> tuple[Trigger, ...]``
  — when which schedules the platform runs depends on the project's
  options (``kubernetes`` with ``scheduler = "in-process"``).

Its files come from ``templates/<name>/``. Adding a preset is adding one
module and one template folder: modules are found by listing this package,
so there is no list to edit.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType

from taskpack.builder.dialects import SCHEDULER, CronPlatform, Trigger
from taskpack.builder.errors import TaskpackError
from taskpack.builder.project import Project

DEFAULT_PRESET = "server"


@dataclass(frozen=True)
class Preset:
    """A preset module's interface, checked when the registry loads it."""

    name: str
    aliases: tuple[str, ...]
    summary: str
    validate: Callable[[Project], list[str]]
    emit: Callable[[Project, Path], None]
    next_steps: Callable[[Project, Path], list[str]]
    preview: Callable[[Path], list[str]] | None
    cron_platform: CronPlatform
    module: ModuleType
    schedules: Callable[[Project], tuple[Trigger, ...]] | None = None

    def deployed_schedules(self, project: Project) -> tuple[Trigger, ...]:
        """The schedules as the platform will run them, each
        :class:`~taskpack.builder.dialects.Trigger` carrying the deployed
        string, its tasks and the crons as written it came from (for
        ``taskpack.json`` and the summary)."""
        if self.schedules is not None:
            return self.schedules(project)
        return self.cron_platform.triggers(project.schedules, project.config)


class UnknownPresetError(TaskpackError):
    """No preset has that name or alias (exit code 2)."""

    def __init__(self, name: str, source: str) -> None:
        self.name = name
        known = ", ".join(_listing())
        super().__init__(f"{source}: unknown preset {name!r} (known: {known})")


def get_preset(name: str, *, source: str = "--preset") -> Preset:
    """The preset called ``name`` or aliased so (``node-server`` → ``server``).

    ``source`` says where the name came from (``--preset``,
    ``TASKPACK_PRESET``, ``taskpack.toml: preset``) for the error raised when
    there is no such preset.
    """
    presets = _by_name()
    preset = presets.get(name)
    if preset is None:
        raise UnknownPresetError(name, source)
    return preset


def known_presets() -> tuple[Preset, ...]:
    """Every preset, sorted by name."""
    unique = {preset.name: preset for preset in _by_name().values()}
    return tuple(unique[name] for name in sorted(unique))


def _listing() -> list[str]:
    return [
        f"{p.name} (alias {', '.join(p.aliases)})" if p.aliases else p.name
        for p in known_presets()
    ]


@cache
def _by_name() -> dict[str, Preset]:
    presets: dict[str, Preset] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name):
        if info.name.startswith("_"):
            continue
        preset = _load(importlib.import_module(f"{__name__}.{info.name}"))
        for key in (preset.name, *preset.aliases):
            other = presets.get(key)
            if other is not None:
                raise RuntimeError(f"preset name {key!r} is used by {other.module.__name__} "
                                   f"and {preset.module.__name__}")
            presets[key] = preset
    return presets


def _load(module: ModuleType) -> Preset:
    """Check ``module`` defines the preset interface and wrap it."""
    required = ("name", "aliases", "summary", "validate", "emit")
    missing = [attr for attr in required if not hasattr(module, attr)]
    if missing:
        raise RuntimeError(f"preset module {module.__name__} lacks {', '.join(missing)}")
    return Preset(
        name=module.name,
        aliases=tuple(module.aliases),
        summary=module.summary,
        validate=module.validate,
        emit=module.emit,
        next_steps=getattr(module, "next_steps", _no_steps),
        preview=getattr(module, "preview", None),
        cron_platform=getattr(module, "cron_platform", SCHEDULER),
        module=module,
        schedules=getattr(module, "deployed_schedules", None),
    )


def _no_steps(project: Project, out: Path) -> list[str]:
    return []

