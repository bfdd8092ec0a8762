"""How `taskpack build` scales with the number of tasks.

Run: ``.venv/bin/python bench/build.py`` (``--sizes 10,100,1000,5000``,
``--repeats 3``, ``--dir /dev/shm`` to build on another file system). For
each size it generates a project, then builds it (preset ``server``) in a
fresh process ``--repeats`` times and prints a Markdown table: the whole
command's wall time, the time spent in ``build()`` itself, and the
process's peak memory (max RSS), best of the repeats, each also as a ratio
to the smallest size (the baseline, measured in the same run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from projects import make_project

CHILD = """
import json, resource, sys, time
from pathlib import Path
from taskpack.builder.build import build
start = time.perf_counter()
build(Path(sys.argv[1]), output=Path(sys.argv[2]))
elapsed = time.perf_counter() - start
print(json.dumps({"build_s": elapsed,
                  "rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def measure(root: Path, output: Path) -> tuple[float, float, int]:
    """(command wall s, build() s, peak RSS KiB) of one build in a fresh process."""
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", CHILD, str(root), str(output)],
                            capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    data = json.loads(result.stdout)
    return wall, data["build_s"], data["rss_kib"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10,100,1000,5000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dir", help="where to generate and build (default: the temp folder); "
                        "compare a disk with /dev/shm to separate file-system costs")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for size in sizes:
            root = make_project(Path(tmp) / f"p{size}", size)
            samples = [measure(root, Path(tmp) / f"out{size}") for _ in range(args.repeats)]
            rows.append((size, min(s[0] for s in samples), min(s[1] for s in samples),
                         min(s[2] for s in samples)))
    base = rows[0]
    where = args.dir or tempfile.gettempdir()
    print(f"Python {platform.python_version()}, {os.cpu_count()} CPUs, in {where}, "
          f"best of {args.repeats}; ratios to {base[0]} tasks (the baseline)\n")
    print("| tasks | command wall | ratio | build() | ratio | peak RSS | ratio |")
    print("|---|---|---|---|---|---|---|")
    for size, wall, inner, rss in rows:
        print(f"| {size:,} | {wall * 1000:.0f} ms | {wall / base[1]:.2f}x "
              f"| {inner * 1000:.0f} ms | {inner / base[2]:.2f}x "
              f"| {rss / 1024:.1f} MiB | {rss / base[3]:.2f}x |")


if __name__ == "__main__":
    main()
