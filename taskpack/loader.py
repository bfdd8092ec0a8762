"""Importing task handlers from a project, without letting the project shadow
anything.

A handler is written either as a path relative to the project root
(``tasks/db/migrate.py``) or as ``module:attr``. Path handlers are executed
under a private module name derived from the path, so a user file called
``tasks/json.py`` is never importable as ``json``. The project root is
*appended* to ``sys.path`` (never prepended) so task modules can import the
project's own helpers while a root ``json.py`` or ``builder.py`` cannot
shadow the standard library or an installed package.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import re
import sys
import threading
from pathlib import Path
from types import ModuleType

from .task import Task, as_task

_module_locks: dict[str, threading.RLock] = {}
"""One lock per module a handler names: loading and unloading one module
never interleave, while different tasks' modules import in parallel (a
slow import holds up only the callers of that task)."""


def _module_lock(root: Path, handler: str) -> threading.RLock:
    name = (handler.partition(":")[0] if ":" in handler and not handler.endswith(".py")
            else private_module_name(root, handler))
    return _module_locks.setdefault(name, threading.RLock())


class HandlerError(Exception):
    """The handler could not be loaded; ``str()`` says why."""


def private_module_name(root: Path, relpath: str) -> str:
    """The name a path handler is imported under: stable, unique per file
    (two projects' ``tasks/a.py`` differ), and never a name a user could
    import by accident."""
    stem = re.sub(r"\W", "_", relpath.removesuffix(".py"))
    digest = hashlib.sha1(str(root / relpath).encode()).hexdigest()[:8]
    return f"_taskpack_task_{stem}_{digest}"


def add_root_to_path(root: Path) -> None:
    """Make the project's own modules importable, after everything else."""
    entry = str(root)
    if entry not in sys.path:
        sys.path.append(entry)


def load_handler(root: Path, handler: str, task_name: str | None = None) -> Task:
    """Import ``handler`` and return its task.

    A path handler must define exactly one task at module level; a
    ``module:attr`` handler names a :class:`Task` or a plain callable.
    Raises :class:`HandlerError` with a one-line reason otherwise.
    ``task_name`` is what a path handler's module is loaded for: it is set as
    the module's ``__taskpack_task__`` before the file runs, so
    ``define_task`` errors name the task rather than the private module.
    """
    add_root_to_path(root)
    with _module_lock(root, handler):
        if ":" in handler and not handler.endswith(".py"):
            return _load_attr(handler)
        return _load_path(root, handler, task_name)


def _load_attr(handler: str) -> Task:
    module_name, _, attr = handler.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise HandlerError(f"cannot import {module_name}: {exc}") from exc
    try:
        obj = getattr(module, attr)
    except AttributeError:
        raise HandlerError(f"module {module_name} has no attribute {attr!r}") from None
    task = as_task(obj)
    if task is None:
        raise HandlerError(f"{handler} is not a task or a callable")
    return task


def unload_handler(root: Path, handler: str) -> None:
    """Forget the imported module of ``handler`` so the next load executes
    the file again (the dev server's reload). A ``module:attr`` handler's
    module is dropped only when its file lies inside ``root``: installed
    packages are never unloaded. Modules already running keep working."""
    with _module_lock(root, handler):
        if ":" in handler and not handler.endswith(".py"):
            name = handler.partition(":")[0]
            module = sys.modules.get(name)
            file = getattr(module, "__file__", None)
            if file is None or not Path(file).resolve().is_relative_to(root.resolve()):
                return
        else:
            name = private_module_name(root, handler)
        forget_module(name)


def forget_module(name: str) -> None:
    """Drop module ``name`` from ``sys.modules`` and delete its bytecode
    cache: the ``.pyc`` records the source's mtime in whole seconds and its
    size, so an edit within the same second that keeps the size (``1`` →
    ``2``) would otherwise be imported from the stale cache."""
    module = sys.modules.pop(name, None)
    cached = getattr(module, "__cached__", None)
    if isinstance(cached, str):
        with contextlib.suppress(OSError):
            Path(cached).unlink()


def _load_path(root: Path, relpath: str, task_name: str | None) -> Task:
    name = private_module_name(root, relpath)
    module = sys.modules.get(name)
    if module is None:
        module = _exec_file(name, root / relpath, task_name)
    return _single_task(module, relpath)


def _exec_file(name: str, path: Path, task_name: str | None) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise HandlerError(f"{path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    if task_name is not None:
        module.__taskpack_task__ = task_name  # type: ignore[attr-defined]
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except FileNotFoundError:
        del sys.modules[name]
        raise HandlerError("file not found") from None
    except Exception:
        del sys.modules[name]
        raise
    except BaseException as exc:  # SystemExit at import fails the load, not the process
        del sys.modules[name]
        raise HandlerError(f"importing {path.name} raised {type(exc).__name__}: {exc}") from exc
    return module


def _single_task(module: ModuleType, relpath: str) -> Task:
    found: dict[int, tuple[str, Task]] = {}
    for attr, value in vars(module).items():
        if isinstance(value, Task) and getattr(value.run, "__module__", None) == module.__name__:
            found.setdefault(id(value), (attr, value))
    if not found:
        raise HandlerError(f"{relpath} defines no task (decorate a function with @define_task)")
    if len(found) > 1:
        names = ", ".join(sorted(attr for attr, _ in found.values()))
        raise HandlerError(f"{relpath} defines more than one task ({names}); keep one per file")
    return next(iter(found.values()))[1]
