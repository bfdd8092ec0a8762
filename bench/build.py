"""How `taskpack build` scales with the number of tasks.

Run: ``.venv/bin/python bench/build.py`` (``--sizes 10,100,1000,5000``,
``--repeats 3``, ``--dir /dev/shm`` to build on another file system). For
each size it generates a project, then ``--repeats`` times runs the whole
``taskpack build --root P --output O`` command (preset ``server``) as a
user does, and ``build()`` alone in a fresh process, and prints a Markdown
table: the command's wall time, CPU time (user + system: the work, without
waiting for the disk) and peak memory (max RSS), and the time spent in
``build()`` itself, each the best of the repeats, each also as a ratio to
the smallest size (the baseline, measured in the same run).

The child processes write and use bytecode caches (in a folder of the run,
``PYTHONPYCACHEPREFIX``) as an installed taskpack does, even when the
environment sets ``PYTHONDONTWRITEBYTECODE``; one unmeasured run per size
warms them and the page cache.
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
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent))

from projects import bytecode_env, make_project

CHILD = """
import json, sys, time
from pathlib import Path
from taskpack.builder.build import build
start = time.perf_counter()
build(Path(sys.argv[1]), output=Path(sys.argv[2]))
print(json.dumps({"build_s": time.perf_counter() - start}))
"""


def command() -> list[str]:
    """The ``taskpack`` console script beside this interpreter."""
    script = Path(sys.executable).with_name("taskpack")
    if not script.is_file():
        sys.exit(f"{script} not found: install taskpack into this interpreter's environment")
    return [str(script)]


class Sample(NamedTuple):
    wall: float  # the command, seconds
    cpu: float  # the command's user + system CPU, seconds
    rss: int  # the command's peak RSS, KiB
    inner: float  # build() alone, seconds


def measure(root: Path, output: Path, env: dict[str, str]) -> Sample:
    """One run of the command, then one of build() alone."""
    argv = [*command(), "build", "--root", str(root), "--output", str(output)]
    start = time.perf_counter()
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL)
    _pid, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        sys.exit(f"{' '.join(argv)} exited with {process.returncode}")
    result = subprocess.run([sys.executable, "-c", CHILD, str(root), str(output)],
                            env=env, capture_output=True, text=True, check=True)
    return Sample(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss,
                  json.loads(result.stdout)["build_s"])


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
        env = bytecode_env(Path(tmp))
        for size in sizes:
            root = make_project(Path(tmp) / f"p{size}", size)
            output = Path(tmp) / f"out{size}"
            measure(root, output, env)  # warm-up: bytecode and page caches
            samples = [measure(root, output, env) for _ in range(args.repeats)]
            rows.append((size, Sample(*(min(column) for column in zip(*samples, strict=True)))))
    base = rows[0][1]
    where = args.dir or tempfile.gettempdir()
    print(f"Python {platform.python_version()}, {os.cpu_count()} CPUs, in {where}, "
          f"best of {args.repeats}; ratios to {rows[0][0]} tasks (the baseline)\n")
    print("| tasks | `taskpack build` wall | ratio | its CPU (user+sys) | ratio "
          "| build() | ratio | peak RSS | ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    for size, best in rows:
        print(f"| {size:,} | {best.wall * 1000:.0f} ms | {best.wall / base.wall:.2f}x "
              f"| {best.cpu * 1000:.0f} ms | {best.cpu / base.cpu:.2f}x "
              f"| {best.inner * 1000:.0f} ms | {best.inner / base.inner:.2f}x "
              f"| {best.rss / 1024:.1f} MiB | {best.rss / base.rss:.2f}x |")

if __name__ == "__main__":
    main()
