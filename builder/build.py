"""``taskpack build``: a project, validated for a preset, written atomically.

Steps: :func:`load_project` → ``preset.validate`` → ``preset.emit`` into a
staging folder beside the output → ``taskpack.json`` (the build record) →
the staging folder replaces the output folder in one rename. Anything that
fails before the rename leaves the previous output byte-identical.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskpack import __version__
from taskpack.presets import DEFAULT_PRESET, Preset, get_preset

from .bundle import BUILD_RECORD, FILE_MODE, seal_tree, write_text
from .dialects import SCHEDULER, Trigger
from .errors import TaskpackError, UsageError
from .project import Project, load_project

PRESET_ENV = "TASKPACK_PRESET"
STAGING_PREFIX = ".taskpack-build-"


@dataclass(frozen=True)
class BuildResult:
    """What a build produced: ``record`` is the content of ``taskpack.json``."""

    project: Project
    preset: Preset
    output: Path
    record: dict[str, Any]
    warnings: tuple[str, ...]


def build(root: Path, *, preset: str | None = None, output: Path | None = None,
          env: Mapping[str, str] | None = None) -> BuildResult:
    """Build the project at ``root`` and return what was written.

    ``preset`` is ``--preset`` (else ``TASKPACK_PRESET`` in ``env``, else the
    config's ``preset``, else ``server``); ``output`` is ``--output`` (else the
    config's ``output_dir`` under ``root``). Raises :class:`TaskpackError`
    (exit 2) for bad input, leaving any previous output untouched.
    """
    project = load_project(root)
    chosen = resolve_preset(project, preset, os.environ if env is None else env)
    out = resolve_output(project, output)
    warnings = (project.warnings + tuple(chosen.validate(project))
                + tuple(ignored_backfill(project, chosen)))
    if not project.tasks:
        warnings += (f"no tasks: nothing under {project.config.tasks_dir}/ and none in "
                     f"{project.config.label} (is --root the project folder?)",)
    with staging_folder(out, "--output" if output is not None else "output_dir") as staging:
        try:
            chosen.emit(project, staging)
        except OSError as exc:
            raise TaskpackError(f"cannot write the bundle: {exc}") from exc
        record = build_record(project, chosen, seal_tree(staging, skip=(BUILD_RECORD,)))
        os.chmod(write_text(staging / BUILD_RECORD, dump_record(record)), FILE_MODE)
        replace_dir(staging, out)
    return BuildResult(project, chosen, out, record, warnings)


def resolve_preset(project: Project, given: str | None, env: Mapping[str, str]) -> Preset:
    """The preset: ``given``, else ``$TASKPACK_PRESET``, else config, else ``server``."""
    if given is not None:
        return get_preset(given, source="--preset")
    if env.get(PRESET_ENV):
        return get_preset(env[PRESET_ENV], source=PRESET_ENV)
    config = project.config
    if config.preset is not None:
        where = config.error("", "preset")
        return get_preset(config.preset, source=f"{where.file}: {where.key}")
    return get_preset(DEFAULT_PRESET)


def resolve_output(project: Project, given: Path | None) -> Path:
    """The output folder, checked: not the project root or a folder holding
    it, not inside ``tasks_dir``, not a file, and not a non-empty folder
    that no build wrote (a build replaces the whole folder)."""
    out = (given if given is not None else project.root / project.config.output_dir).resolve()

    def error(message: str) -> TaskpackError:
        if given is not None:
            return UsageError("--output", message)
        return project.config.error(message, "output_dir")

    root = project.root
    tasks_dir = (root / project.config.tasks_dir).resolve()
    if out == root:
        return _raise(error(f"{out} is the project root; choose a folder inside or beside it"))
    if root.is_relative_to(out):
        return _raise(error(f"{out} contains the project root; choose a folder inside it"))
    if out.is_relative_to(tasks_dir):
        return _raise(error(f"{out} is inside the tasks folder {project.config.tasks_dir}/; "
                            "its files would become tasks"))
    if out.exists() and not out.is_dir():
        return _raise(error(f"{out} exists and is not a folder"))
    if out.is_dir() and any(out.iterdir()) and not (out / BUILD_RECORD).is_file():
        return _raise(error(f"{out} is not empty and holds no {BUILD_RECORD}, so no build "
                            "wrote it; remove it or choose another folder"))
    return out


def _raise(error: TaskpackError) -> Path:
    raise error


@contextlib.contextmanager
def staging_folder(out: Path, source: str) -> Iterator[Path]:
    """A fresh staging folder beside ``out`` (same file system, so the final
    rename is atomic), removed afterwards whatever happens;
    :class:`UsageError` when ``out``'s parent cannot be written.

    A build killed mid-way (``kill -9``) cannot remove its staging folder,
    so builds share ``out``'s parent through a ``flock`` on that folder:
    each live build holds it shared; a build that can take it exclusively
    is the only one there, so every ``.taskpack-build-*`` folder is stale
    and it removes them first. The kernel drops a dead build's hold."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        folder = os.open(out.parent, os.O_RDONLY)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise UsageError(source, f"cannot write the output folder {out}: {reason}") from None
    try:
        if _lock(folder, fcntl.LOCK_EX | fcntl.LOCK_NB):
            remove_stale_staging(out.parent)
        _lock(folder, fcntl.LOCK_SH)  # held until the build ends
        try:
            staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out.parent))
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise UsageError(source, f"cannot write the output folder {out}: {reason}") from None
        try:
            yield staging
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    finally:
        os.close(folder)


def _lock(fd: int, how: int) -> bool:
    """``flock``; False when another process holds it (non-blocking) or the
    file system does not lock folders (then builds just do not clean up)."""
    try:
        fcntl.flock(fd, how)
    except OSError:
        return False
    return True


def remove_stale_staging(folder: Path) -> list[str]:
    """Remove every ``.taskpack-build-*`` folder in ``folder`` (staging
    folders, and old outputs moved aside, of builds that died); their names."""
    removed = []
    for entry in sorted(os.scandir(folder), key=lambda entry: entry.name):
        if entry.name.startswith(STAGING_PREFIX) and entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry.name)
    return removed


def build_record(project: Project, preset: Preset, files: Mapping[str, str]) -> dict[str, Any]:
    """The content of ``taskpack.json``: preset, version, tasks, schedules as
    deployed, and every emitted file (``files``) with its SHA-256."""
    return {
        "files": dict(files),
        "preset": preset.name,
        "schedules": schedule_records(preset.deployed_schedules(project)),
        "taskpack_version": __version__,
        "tasks": {
            task.name: {"description": task.description, "handler": task.handler}
            for task in project.tasks
        },
    }


def schedule_records(triggers: Iterable[Trigger]) -> list[dict[str, Any]]:
    """The record's ``schedules``: per deployed trigger, the string the
    platform runs (``cron``), the crons as written in config that it came
    from (``written``, sorted) and its tasks; sorted by ``cron``."""
    entries = [{"cron": t.cron, "tasks": list(t.tasks), "written": sorted(t.keys)}
               for t in triggers]
    return sorted(entries, key=lambda entry: (entry["cron"], entry["written"]))


def dump_record(record: Mapping[str, Any]) -> str:
    """Deterministic JSON text for the build record."""
    return json.dumps(record, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def replace_dir(staging: Path, out: Path) -> None:
    """Put ``staging`` where ``out`` is. With an existing ``out`` the two are
    exchanged in one ``renameat2(RENAME_EXCHANGE)`` where the kernel has it,
    so readers never see a missing output; otherwise the old output is moved
    aside first and moved back if the second rename fails. The old output
    ends up at ``staging`` (the caller deletes it)."""
    if not out.exists():
        os.rename(staging, out)
        return
    if _exchange(staging, out):
        return
    aside = staging.with_name(staging.name + "-old")
    os.rename(out, aside)
    try:
        os.rename(staging, out)
    except OSError:
        os.rename(aside, out)
        raise
    os.rename(aside, staging)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux ``renameat2``); False if unsupported."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    libc = ctypes.CDLL(name, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    result = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def ignored_backfill(project: Project, chosen: Preset) -> list[str]:
    """A warning per scheduled task with a ``backfill`` window on a preset
    whose platform runs the schedules: platform cron does not backfill
    missed fires (DESIGN §11), so the option does nothing there."""
    if chosen.cron_platform is SCHEDULER:
        return []
    scheduled = {name for trigger in chosen.deployed_schedules(project) for name in trigger.tasks}
    return [f"{where}: ignored by the {chosen.name} preset ({chosen.cron_platform.label} runs "
            "the schedules and does not backfill missed fires)"
            for task in project.tasks if task.name in scheduled
            if (where := task.sets("backfill")) is not None]
