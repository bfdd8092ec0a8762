"""Run mypy --strict on the package as it is installed.

The source tree maps ``builder/``, ``presets/`` and ``templates/`` into the
``taskpack`` namespace (setuptools package-dir), which mypy cannot follow.
This script lays out that namespace as symlinks under ``.cache/typecheck``
and checks it, printing paths as they are in the source tree.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAPPING = {"taskpack": "taskpack", "taskpack/builder": "builder", "taskpack/presets": "presets"}


def main() -> int:
    tree = ROOT / ".cache" / "typecheck"
    package = tree / "taskpack"
    package.mkdir(parents=True, exist_ok=True)
    for link in package.iterdir():
        link.unlink()
    for source in (ROOT / "taskpack").iterdir():
        if source.name != "__pycache__":
            (package / source.name).symlink_to(source)
    for target, source_dir in MAPPING.items():
        if target != "taskpack":
            (tree / target).symlink_to(ROOT / source_dir)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
         "-p", "taskpack"],
        cwd=tree, capture_output=True, text=True, check=False,
    )
    output = result.stdout + result.stderr
    for target, source_dir in MAPPING.items():
        output = output.replace(f"{target}/", f"{source_dir}/")
    sys.stdout.write(output)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
