"""``Registry.unload``: the dev server's reload imports edited task modules
afresh; installed modules are never unloaded."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from taskpack.registry import Registry, TaskEntry
from tests.helpers import MakeProject

SOURCE = """\
from taskpack import define_task

@define_task
def run(event):
    return {version}
"""


def registry(root: Path) -> Registry:
    return Registry(root, {
        "path": TaskEntry("path", "tasks/path.py"),
        "attr": TaskEntry("attr", "localjobs.attr_task:run"),
        "installed": TaskEntry("installed", "json:dumps"),
    })


def test_unload_reimports_project_modules_only(make_project: MakeProject,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # Bytecode caching on, as for most users; the edits below keep each
    # file's size and its mtime, as an edit within the same second does.
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    root = make_project({
        "tasks/path.py": SOURCE.format(version=1),
        "localjobs/__init__.py": "",
        "localjobs/attr_task.py": SOURCE.format(version=10),
    })
    first = registry(root)
    assert asyncio.run(first.run("path")) == 1
    assert asyncio.run(first.run("attr")) == 10
    first.get("installed")

    for rel, version in (("tasks/path.py", 2), ("localjobs/attr_task.py", 20)):
        path = root / rel
        before = path.stat()
        path.write_text(SOURCE.format(version=version))
        assert path.stat().st_size == before.st_size
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # an edit in the same second
    assert asyncio.run(registry(root).run("path")) == 1  # still cached: no unload yet

    first.unload()
    assert not first.is_loaded("path")
    second = registry(root)
    assert asyncio.run(second.run("path")) == 2
    assert asyncio.run(second.run("attr")) == 20
    assert sys.modules["json"] is json
