"""The resolved project: one immutable object every later step reads.

``load_project(root)`` reads the config, scans ``tasks_dir``, merges the
two and validates the result. Presets, the bundler, the CLI and the dev
server read only :class:`Project`; none of them touches config files or
scans folders again.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from taskpack.cron import CronError, CronExpr

from .config import Config, TaskConfig, load_config
from .errors import ConfigError
from .scan import NAME_RE, ScannedTask, parse_module, read_task_file, scan_tasks

MODULE_HANDLER_RE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")


def _frozen(mapping: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class TaskSpec:
    """One task of the project.

    ``handler`` is a root-relative POSIX path (``tasks/db/migrate.py``) or
    ``module:attr``; ``None`` when the task is listed in config without an
    implementation (it answers 501). ``source`` is the scanned file, if any.
    ``options`` are the config's; ``source_options`` the names of the
    options the handler file's ``define_task(...)`` sets.
    """

    name: str
    handler: str | None
    description: str = ""
    source: str | None = None
    options: Mapping[str, Any] = field(default_factory=_frozen)
    source_options: frozenset[str] = frozenset()

    def sets(self, option: str) -> str | None:
        """Where ``option`` is set for this task (a config key or the
        handler's ``define_task``), or None."""
        if option in self.options:
            return f'tasks."{self.name}".{option}'
        if option in self.source_options:
            return f"{self.handler}: define_task({option}=...)"
        return None


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
    warnings: tuple[str, ...] = ()
    """Mistakes that do not stop the project (one line each, naming file
    and key); ``task list``, ``build`` and ``dev`` print them."""

    @property
    def task_names(self) -> tuple[str, ...]:
        return tuple(task.name for task in self.tasks)

    def task(self, name: str) -> TaskSpec:
        """The task called ``name``; ``KeyError`` if there is none."""
        for task in self.tasks:
            if task.name == name:
                return task
        raise KeyError(name)

    def preset_options(self, family: str) -> Mapping[str, Any]:
        """The validated ``[family]`` table (``server``, ``cloudflare``, ``vercel``)."""
        return self.config.preset_options.get(family, _frozen())


def load_project(root: Path) -> Project:
    """Resolve the project at ``root``: config, scanned tasks, merged and checked.

    Raises :class:`ConfigError` for anything wrong, naming file and key.
    """
    root = root.resolve()
    config = load_config(root)
    scanned = {task.name: task for task in scan_tasks(root, config.tasks_dir)}
    tasks = dict(_from_scan(task) for task in scanned.values())
    for name, entry in config.tasks.items():
        tasks[name] = _merge(root, config, name, entry, scanned.get(name),
                             [task.path for task in scanned.values()])
    for task in scanned.values():
        if not task.defines_task and tasks[task.name].handler == task.path:
            raise ConfigError(task.path, None, NO_TASK)
    known = sorted(tasks)
    warnings = tuple(_options_for_nothing(config, tasks))
    schedules = []
    for cron, names in config.scheduled_tasks:
        try:
            CronExpr.parse(cron)
        except CronError as exc:
            raise config.error(str(exc), "scheduled_tasks", cron) from None
        for name in names:
            if name not in tasks:
                raise config.error(f"unknown task {name!r}{task_hint(name, known)}",
                                   "scheduled_tasks", cron)
        schedules.append(Schedule(cron, names))
    return Project(
        root=root,
        config=config,
        tasks=tuple(tasks[name] for name in known),
        schedules=tuple(schedules),
        warnings=warnings,
    )


NO_TASK = ("defines no task: decorate a function with @define_task "
           "(files and folders starting with '_' are not tasks)")


def _options_for_nothing(config: Config, tasks: Mapping[str, TaskSpec]) -> list[str]:
    """A ``[tasks."x"]`` entry with options but no file and no handler sets
    options of nothing: most likely a typo of a task's name. (An entry with
    only a description is Nitro's "not implemented" task, and legal.)"""
    implemented = [name for name, task in tasks.items() if task.handler is not None]
    return [
        config.error(f"no task file and no handler, so its options apply to nothing"
                     f"{task_hint(name, implemented)}", "tasks", name).format_message()
        for name, task in tasks.items()
        if task.handler is None and task.options
    ]


def task_hint(name: str, known: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` for a mistyped task name, else the known names."""
    close = difflib.get_close_matches(name, list(known), n=1)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" (known: {', '.join(known) or 'none'})"


def _from_scan(task: ScannedTask) -> tuple[str, TaskSpec]:
    return task.name, TaskSpec(task.name, task.path, task.description, source=task.path,
                               source_options=task.options)


def _merge(root: Path, config: Config, name: str, entry: TaskConfig,
           scanned: ScannedTask | None, task_files: Sequence[str]) -> TaskSpec:
    """A config-registered task: its handler wins over the scanned file's."""
    if not NAME_RE.match(name):
        raise config.error("not a valid task name (use letters, digits, '_' and '-', "
                           "segments joined with ':')", "tasks", name)
    handler = scanned.path if scanned else None
    description = scanned.description if scanned else ""
    source_options = scanned.options if scanned else frozenset()
    if entry.handler is not None:
        handler = _check_handler(root, config, name, entry.handler, task_files)
        source_options = frozenset()
        if handler.endswith(".py"):
            info = read_task_file(root, handler)
            if not info.defines_task:
                raise config.error(f"{handler} {NO_TASK}", "tasks", name, "handler")
            description, source_options = info.description, info.options
    if entry.description is not None:
        description = entry.description
    return TaskSpec(name, handler, description, source=scanned.path if scanned else None,
                    options=_frozen(entry.options), source_options=source_options)


def _check_handler(root: Path, config: Config, name: str, handler: str,
                   task_files: Sequence[str]) -> str:
    """The handler, normalised (POSIX path relative to root, or ``module:attr``)."""
    if handler.endswith(".py"):
        path = (root / handler).resolve()
        if not path.is_relative_to(root):
            raise config.error(f"handler {handler!r} is outside the project root",
                               "tasks", name, "handler")
        if not path.is_file():
            close = difflib.get_close_matches(handler, list(task_files), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise config.error(f"handler file {handler!r} does not exist{hint}",
                               "tasks", name, "handler")
        return path.relative_to(root).as_posix()
    if not MODULE_HANDLER_RE.match(handler):
        raise config.error(f"handler {handler!r} is neither a .py path nor 'module:attr'",
                           "tasks", name, "handler")
    module, _, attr = handler.partition(":")
    local = _local_module(root, module)
    if local is not None:
        if not _defines(parse_module(root, local), attr):
            raise config.error(f"{local} defines no top-level {attr!r}", "tasks", name, "handler")
    elif importlib.util.find_spec(module.split(".")[0]) is None:
        raise config.error(f"module {module!r} is neither in the project nor installed",
                           "tasks", name, "handler")
    return handler


def _local_module(root: Path, module: str) -> str | None:
    """The project file defining ``module`` (root-relative), if there is one."""
    base = module.replace(".", "/")
    for candidate in (f"{base}.py", f"{base}/__init__.py"):
        if (root / candidate).is_file():
            return candidate
    return None


def _defines(module: ast.Module, attr: str) -> bool:
    for node in module.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if node.name == attr:
                return True
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == attr for t in targets):
                return True
        elif isinstance(node, ast.ImportFrom | ast.Import) and any(
            (a.asname or a.name.split(".")[0]) == attr for a in node.names
        ):
            return True
    return False
