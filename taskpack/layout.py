"""The layout of a built bundle, and loading its registry at runtime.

``taskpack build`` writes, into a bundle folder (``<base>``; for the server
presets ``.output/server``)::

    <base>/taskpack/               this runtime package (runtime modules only)
    <base>/taskpack_manifest.py    MANIFEST: the project's tasks and schedules
    <base>/project/                the project's Python sources, paths kept

The entry file (``index.py``, ``app.py``, ``entry.py``) sits in ``<base>``,
so ``taskpack`` and ``taskpack_manifest`` import from there; the project's
folder is appended to ``sys.path`` by the loader when a task first runs,
so task modules import the project's own helpers as they do in development.
The manifest is a Python module (not a JSON file) so every platform that can
import the entry file can load it, including Workers where the bundle is a
set of modules rather than a file system.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from .registry import Registry, set_registry

MANIFEST_MODULE = "taskpack_manifest"
PROJECT_DIR = "project"
RUNTIME_DIR = "taskpack"


def read_manifest(base: Path) -> dict[str, Any]:
    """The ``MANIFEST`` dict of the bundle at ``base``.

    ``FileNotFoundError`` when ``base`` holds no manifest (not a bundle).
    """
    path = base / f"{MANIFEST_MODULE}.py"
    spec = importlib.util.spec_from_file_location(f"_{MANIFEST_MODULE}_{id(base):x}", path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    manifest: dict[str, Any] = module.MANIFEST
    return manifest


def load_registry(base: Path, manifest: dict[str, Any] | None = None,
                  **kwargs: Any) -> Registry:
    """The registry of the bundle at ``base`` (task modules still
    unimported), made the process's current one so tasks can call
    :func:`taskpack.run_task`.

    ``manifest`` is the bundle's (default: read from ``base``); ``kwargs``
    go to :meth:`Registry.from_manifest` (``threads=False`` under Pyodide,
    the ``store``). A relative SQLite path is relative to the registry's
    root, inside the bundle, which every build replaces: callers pass a
    :class:`~taskpack.store.Store` made for the working directory
    (:func:`taskpack.server.bundle_store`) or ``memory://``.
    """
    registry = Registry.from_manifest(manifest if manifest is not None else read_manifest(base),
                                      base / PROJECT_DIR, **kwargs)
    set_registry(registry)
    return registry
