#!/usr/bin/env python3
"""Install a pinned external tool set used by the integration tests.

``tools/<name>/`` holds the pins, committed:

- ``package.json`` + ``package-lock.json``: npm packages, installed with
  ``npm ci`` (the lockfile is the source of truth);
- ``wheels.txt`` (optional): ``name==version --hash=sha256:...`` lines,
  fetched with ``pip download --no-deps --require-hashes``.

Everything lands in ``.cache/tools/<name>/`` (ignored by git); npm's download
cache is ``.cache/npm``. A stamp file records the sha256 of the pins, so a
second run with unchanged pins returns at once. A file lock makes concurrent
runs (parallel test workers) safe.

Usage: ``python scripts/install_tools.py NAME`` prints a JSON object with
``dir`` (the install directory), ``bin`` (``node_modules/.bin``) and
``wheels`` (the downloaded wheel files). Exit 2 for an unknown tool set,
1 when an install step fails (its output is shown).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PINS = REPO / "tools"
CACHE = REPO / ".cache"
PIN_FILES = ("package.json", "package-lock.json", "wheels.txt")


def _pins_digest(pins: Path) -> str:
    digest = hashlib.sha256()
    for name in PIN_FILES:
        path = pins / name
        if path.is_file():
            digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _pinned(pins: Path) -> str:
    """What a tool set downloads, for the line printed before it does:
    ``pyodide@0.28.2, wrangler@4.86.0, workers-runtime-sdk==1.9.5``."""
    names: list[str] = []
    if (pins / "package.json").is_file():
        dependencies = json.loads((pins / "package.json").read_text())["dependencies"]
        names += [f"{name}@{version}" for name, version in sorted(dependencies.items())]
    if (pins / "wheels.txt").is_file():
        names += [line.split()[0] for line in (pins / "wheels.txt").read_text().splitlines()
                  if line.strip() and not line.startswith("#")]
    return ", ".join(names)


def _run(cmd: list[str], cwd: Path) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"install_tools: `{' '.join(cmd)}` failed with exit {proc.returncode}")


def install(name: str) -> dict[str, object]:
    """Install tool set ``name`` if its pins changed; return where it lives."""
    pins = PINS / name
    if not (pins / "package.json").is_file() and not (pins / "wheels.txt").is_file():
        print(f"install_tools: unknown tool set {name!r} (no {pins}/package.json)", file=sys.stderr)
        raise SystemExit(2)
    target = CACHE / "tools" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    stamp = target / ".installed"
    digest = _pins_digest(pins)
    with open(target.parent / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        installed = stamp.is_file() and stamp.read_text() == digest
        if installed and (pins / "package.json").is_file():
            installed = (target / "node_modules" / ".package-lock.json").is_file()
        if not installed:
            print(f"install_tools: downloading {_pinned(pins)} into {target} "
                  "(first run only; this can take a few minutes)", file=sys.stderr, flush=True)
            if target.exists():
                shutil.rmtree(target)
            target.mkdir()
            if (pins / "package.json").is_file():
                for file in ("package.json", "package-lock.json"):
                    shutil.copyfile(pins / file, target / file)
                _run(
                    [
                        "npm",
                        "ci",
                        "--cache",
                        str(CACHE / "npm"),
                        "--prefer-offline",
                        "--no-audit",
                        "--no-fund",
                        "--loglevel=error",
                    ],
                    target,
                )
            if (pins / "wheels.txt").is_file():
                _run(
                    [
                        sys.executable,
                        "-m",
                        "pip",
                        "download",
                        "--quiet",
                        "--no-deps",
                        "--only-binary=:all:",
                        "--require-hashes",
                        "--dest",
                        str(target / "wheels"),
                        "--requirement",
                        str(pins / "wheels.txt"),
                    ],
                    target,
                )
            stamp.write_text(digest)
    wheels = sorted(str(p) for p in (target / "wheels").glob("*.whl"))
    return {"dir": str(target), "bin": str(target / "node_modules" / ".bin"), "wheels": wheels}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: install_tools.py NAME", file=sys.stderr)
        return 2
    print(json.dumps(install(argv[0]), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
