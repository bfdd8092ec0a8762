"""Fixtures for the Vercel integration tests: the real ``vercel build``.

The pinned CLI (``tools/vercel/``) is installed by ``scripts/install_tools.py``
into ``.cache/tools/vercel`` on first use (a no-op once installed). ``uv``
comes from the ``dev`` extra (the venv running the tests).

How ``vercel build`` (``@vercel/python`` 6.x) finds its Python: it runs
``uv python list --only-installed`` and takes the first CPython 3.12 found
(3.12 is the default runtime), then executes ``python3.12`` *by name*. A
pyenv shim for a version that is not pyenv's global one is listed but fails
when run, so the fixture makes a directory holding exactly two symlinks,
``python3.12`` (a real interpreter) and ``uv``, and puts it first on PATH.

Network: with ``--api`` pointed at a closed loopback port and telemetry off,
the CLI reaches no Vercel host; ``uv`` fetches ``vercel-runtime`` and the
project's requirements from PyPI. ``uv``'s cache is forced by the builder to
``<project>/.vercel/python/cache/uv``; it is made a symlink into
``.cache/uv`` (shared with the tests' own uv calls) so repeated builds
download nothing.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CACHE = REPO / ".cache"
# Nothing listens on the discard port: the CLI's one API call (GET /v2/user)
# is refused at once instead of resolving api.vercel.com.
CLOSED_API = "http://127.0.0.1:9"


def _python_minor(exe: str) -> str | None:
    try:
        proc = subprocess.run(
            [exe, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except OSError:
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def find_python312() -> str | None:
    """A working CPython 3.12 executable, or None.

    Order: ``$TASKPACK_PYTHON312``; ``python3.12`` on PATH (only if it runs:
    pyenv shims often do not); pyenv's versions directory; uv-managed or
    system interpreters that ``uv python find`` knows (never downloading).
    """
    candidates: list[str] = []
    if os.environ.get("TASKPACK_PYTHON312"):
        candidates.append(os.environ["TASKPACK_PYTHON312"])
    on_path = shutil.which("python3.12")
    if on_path:
        candidates.append(on_path)
    pyenv_root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates += sorted(glob.glob(f"{pyenv_root}/versions/3.12*/bin/python3.12"), reverse=True)
    candidates += ["/usr/local/bin/python3.12", "/usr/bin/python3.12"]
    uv = Path(sys.executable).parent / "uv"
    if uv.exists():
        proc = subprocess.run(
            [str(uv), "python", "find", "3.12"],
            capture_output=True,
            text=True,
            env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"},
        )
        if proc.returncode == 0 and proc.stdout.strip():
            candidates.append(proc.stdout.strip())
    for exe in candidates:
        if os.path.exists(exe) and _python_minor(exe) == "3.12":
            return os.path.realpath(exe)
    return None


@dataclass(frozen=True)
class VercelTools:
    vercel: Path
    path_dir: Path  # holds python3.12 and uv; goes first on PATH

    def env(self, home: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("VERCEL")}
        env.update(
            PATH=f"{self.path_dir}{os.pathsep}{env.get('PATH', '')}",
            VERCEL_TELEMETRY_DISABLED="1",
            HOME=str(home),
            XDG_DATA_HOME=str(home / "data"),
            XDG_CACHE_HOME=str(home / "cache"),
        )
        return env

    def build(self, project: Path, home: Path) -> subprocess.CompletedProcess[str]:
        """Run ``vercel build --yes`` in ``project`` (which needs its own
        ``.vercel/project.json``), with the shared uv cache linked in."""
        uv_cache = project / ".vercel" / "python" / "cache" / "uv"
        if not uv_cache.exists():
            uv_cache.parent.mkdir(parents=True, exist_ok=True)
            shared = CACHE / "uv"
            shared.mkdir(parents=True, exist_ok=True)
            uv_cache.symlink_to(shared, target_is_directory=True)
        home.mkdir(parents=True, exist_ok=True)
        return subprocess.run(
            [
                str(self.vercel),
                "build",
                "--yes",
                "--api",
                CLOSED_API,
                "--global-config",
                str(home / "vercel-config"),
            ],
            cwd=project,
            env=self.env(home),
            capture_output=True,
            text=True,
            timeout=600,
        )


def write_project_json(project: Path) -> None:
    """The linked-project file ``vercel build`` needs instead of a login."""
    (project / ".vercel").mkdir(parents=True, exist_ok=True)
    (project / ".vercel" / "project.json").write_text(
        json.dumps(
            {
                "projectId": "prj_taskpacktest",
                "orgId": "team_taskpacktest",
                "settings": {"framework": None},
            }
        )
    )


@pytest.fixture(scope="session")
def vercel_tools() -> VercelTools:
    python312 = find_python312()
    if python312 is None:
        pytest.skip(
            "vercel build needs CPython 3.12 and none was found (set TASKPACK_PYTHON312)"
        )
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "install_tools.py"), "vercel"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    info = json.loads(proc.stdout)
    uv = Path(sys.executable).parent / "uv"
    assert uv.exists(), "uv is missing from the venv: install the dev extra ('.[dev]')"
    path_dir = CACHE / "tools" / "vercel-path"
    path_dir.mkdir(parents=True, exist_ok=True)
    for name, target in (("python3.12", python312), ("uv", str(uv))):
        link = path_dir / name
        if link.is_symlink() and os.readlink(link) == target:
            continue
        tmp = path_dir / f".{name}.{os.getpid()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(target)
        tmp.replace(link)  # atomic: parallel sessions never see a missing link
    return VercelTools(vercel=Path(info["bin"]) / "vercel", path_dir=path_dir)
