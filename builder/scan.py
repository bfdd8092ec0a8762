"""Task discovery: files under ``tasks_dir`` become tasks, without running
any user code.

``tasks/db/migrate.py`` is the task ``db:migrate``. Files and folders whose
name starts with ``_`` or ``.`` are skipped (so ``__init__.py`` is never a
task). Each file is parsed with :mod:`ast` to read its description and to
check it defines at most one task; nothing is imported.
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskpack.options import make_options

from .errors import ConfigError
from .paths import check_link, check_loop, check_name, is_dir, real_root

NAME_RE = re.compile(r"^[A-Za-z0-9_-]+(:[A-Za-z0-9_.-]+)*$")


@dataclass(frozen=True)
class ScannedTask:
    """A task file: its name, root-relative POSIX path, description,
    whether it defines a task (``define_task`` seen at top level) and the
    options its ``define_task(...)`` names."""

    name: str
    path: str
    description: str
    defines_task: bool = True
    options: frozenset[str] = frozenset()


@dataclass(frozen=True)
class TaskFile:
    """What reading a task file tells without running it: its description,
    whether it defines a task, and the execution options its
    ``define_task(...)`` names (whatever their values)."""

    description: str
    defines_task: bool
    options: frozenset[str] = frozenset()


def scan_tasks(root: Path, tasks_dir: str) -> tuple[ScannedTask, ...]:
    """Every task under ``root / tasks_dir``, sorted by name.

    Raises :class:`ConfigError` naming the file for an invalid name, a
    syntax error (with its line), two tasks in one file, or two files that
    map to the same name.
    """
    base = root / tasks_dir
    if not base.is_dir():
        return ()
    where = base.relative_to(root).as_posix()
    prefix = "" if where == "." else where + "/"
    found: dict[str, ScannedTask] = {}
    folded: dict[str, ScannedTask] = {}
    files = _task_files(os.fspath(base), prefix, real_root(root), (os.path.realpath(base),))
    for path in sorted(files, key=lambda path: path.split("/")):
        rel = prefix + path
        name = task_name(path)
        if not NAME_RE.match(name):
            raise ConfigError(rel, None, f"{name!r} is not a valid task name (use letters, "
                              "digits, '_' and '-', folders joined with ':')")
        info = read_task_file(root, rel)
        task = ScannedTask(name, rel, info.description, info.defines_task, info.options)
        other = folded.get(name.casefold())
        if other is not None:
            raise ConfigError(rel, None, f"task name {name!r} collides with {other.path} "
                              f"({other.name!r})")
        found[name] = folded[name.casefold()] = task
    return tuple(found[name] for name in sorted(found))


def task_name(relpath: str) -> str:
    """The task name of a path relative to ``tasks_dir``: ``db/migrate.py`` → ``db:migrate``."""
    return relpath.removesuffix(".py").replace("/", ":")


def _task_files(folder: str, where: str, root: str, walking: tuple[str, ...],
                prefix: str = "") -> Iterator[str]:
    """Task files under ``folder`` as POSIX paths relative to it (with
    ``prefix``), under the rules of :mod:`builder.paths` (``where`` is the
    folder's root-relative prefix, for messages; ``walking`` the real paths
    of the folders walked down to it)."""
    with os.scandir(folder) as entries:
        for entry in sorted(entries, key=lambda entry: entry.name):
            if entry.name.startswith(("_", ".")):
                continue
            rel = f"{where}{prefix}{entry.name}"
            if entry.is_symlink():
                if is_dir(entry.path, rel):
                    real = check_loop(entry.path, rel, root, walking)
                    yield from _task_files(entry.path, where, root, (*walking, real),
                                           f"{prefix}{entry.name}/")
                    continue
                check_link(entry.path, rel, root)
            if entry.is_dir():
                check_name(rel)
                yield from _task_files(entry.path, where, root,
                                       (*walking, os.path.realpath(entry.path)),
                                       f"{prefix}{entry.name}/")
            elif entry.name.endswith(".py") and entry.is_file():
                check_name(rel)
                yield prefix + entry.name


def read_task_file(root: Path, rel: str) -> TaskFile:
    """Read the task file ``rel``: its description (the ``description=``
    literal given to ``define_task``, else the module docstring's first
    line, else ``""``) and whether it defines a task.

    :class:`ConfigError` naming ``file:line`` for two tasks in one file, or
    for an option of ``define_task(...)`` written as a literal that the
    runtime would refuse (``timeout=0``): caught here, at ``task list`` and
    ``build``, instead of at the task's first run. Options that are not
    literals (a variable, a ``RetryPolicy(...)``) are checked when the
    module is imported.
    """
    module = parse_module(root, rel)
    calls = _define_task_calls(module)
    if len(calls) > 1:
        names = ", ".join(label for label, _ in calls)
        raise ConfigError(rel, None, f"defines more than one task ({names}); keep one per file")
    description = None
    options: set[str] = set()
    for _, call in calls:
        _check_literal_options(rel, call)
        options.update(keyword.arg for keyword in call.keywords
                       if keyword.arg is not None and keyword.arg not in _NOT_OPTIONS)
        for keyword in call.keywords:
            value = keyword.value
            if keyword.arg == "description" and isinstance(value, ast.Constant) \
                    and isinstance(value.value, str):
                description = value.value
    if description is None:
        docstring = ast.get_docstring(module)
        description = (docstring.strip().splitlines()[0]
                       if docstring and docstring.strip() else "")
    return TaskFile(description, bool(calls), frozenset(options))


# define_task's own keywords; every other keyword is an execution option.
_NOT_OPTIONS = frozenset({"run", "name", "description"})


def _check_literal_options(rel: str, call: ast.Call) -> None:
    """Validate the options of one ``define_task(...)`` call that are
    literals, with the runtime's own rules (:func:`taskpack.options.make_options`)."""
    literals: dict[str, Any] = {}
    lines: dict[str, int] = {}
    for keyword in call.keywords:
        if keyword.arg is None or keyword.arg in _NOT_OPTIONS:
            continue
        try:
            literals[keyword.arg] = ast.literal_eval(keyword.value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            continue  # not a literal: checked when the module is imported
        lines[keyword.arg] = keyword.value.lineno
    if not literals:
        return
    try:
        make_options("", **literals)
    except (TypeError, ValueError) as exc:
        # "task : option timeout: must be ..." -> "define_task(timeout=...): must be ..."
        option, _, problem = str(exc).partition("option ")[2].partition(": ")
        line = lines.get(option, call.lineno)
        raise ConfigError(f"{rel}:{line}", f"define_task({option}=...)", problem) from None


def parse_module(root: Path, rel: str) -> ast.Module:
    """The file's syntax tree; :class:`ConfigError` with ``file:line`` if it
    cannot be read or parsed."""
    try:
        with open(os.path.join(root, rel), "rb") as file:
            source = file.read()
        return ast.parse(source, filename=rel)
    except SyntaxError as exc:
        where = f"{rel}:{exc.lineno}" if exc.lineno else rel
        raise ConfigError(where, None, f"syntax error: {exc.msg}") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(rel, None, f"cannot read: {exc}") from None


def _define_task_calls(module: ast.Module) -> list[tuple[str, ast.Call]]:
    """Top-level uses of ``define_task``, with the name they define.

    Recognises ``@define_task``, ``@define_task(...)``, ``x = define_task(...)``
    and the same through ``taskpack.define_task`` or an import alias.
    """
    direct = {"define_task"}
    modules = {"taskpack"}
    for node in module.body:
        if isinstance(node, ast.ImportFrom) and node.module == "taskpack":
            direct.update(a.asname or a.name for a in node.names if a.name == "define_task")
        elif isinstance(node, ast.Import):
            modules.update(a.asname or a.name for a in node.names if a.name == "taskpack")

    def is_define(expr: ast.expr) -> bool:
        if isinstance(expr, ast.Name):
            return expr.id in direct
        return (isinstance(expr, ast.Attribute) and expr.attr == "define_task"
                and isinstance(expr.value, ast.Name) and expr.value.id in modules)

    found: list[tuple[str, ast.Call]] = []
    for node in module.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for deco in node.decorator_list:
                if is_define(deco):
                    found.append((node.name, ast.Call(func=deco, args=[], keywords=[])))
                elif isinstance(deco, ast.Call) and is_define(deco.func):
                    found.append((node.name, deco))
        elif (isinstance(node, ast.Assign | ast.AnnAssign) and isinstance(node.value, ast.Call)
              and is_define(node.value.func)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            found.append((", ".join(ast.unparse(t) for t in targets), node.value))
    return found
