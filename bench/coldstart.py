"""Cold start of a built server bundle: 10 tasks against 1,000.

Run: ``.venv/bin/python bench/coldstart.py`` (``--sizes 10,1000``,
``--repeats 11``). For each size it generates a project (one schedule per 50
tasks, task API on), builds it with the ``server`` preset, then measures,
in fresh processes and with this interpreter (which has the bundle's
requirements: httptools, uvloop):

* **server**: from starting ``python index.py`` to the first successful
  ``POST /_nitro/tasks/<task>`` (polled every 2 ms): interpreter start,
  imports, manifest, scheduler start, uvicorn, lazy import of the one task;
* **run_task**: from starting ``python -c`` to the first successful
  ``run_task`` on the bundle's registry, no server.

Bytecode caches are written and used (in a folder of the run), as in a
deployment, even when the environment sets ``PYTHONDONTWRITEBYTECODE``.
Sizes are measured in turn, round after round; medians of the rounds, with
ratios to the smallest size (the baseline, measured in the same run). Lazy
task imports should keep the two close.

``--baseline REV`` measures instead what ``bench/vs_nitro.py`` calls cold
start (process start to the first 200 on ``GET /_health``, its own
``cold_start``) of this checkout's ``server`` bundle against the same
bundle with the runtime (``taskpack/``) of git revision ``REV``, before
and after alternating, ``--repeats`` starts each per size: medians with
the quartiles, and after/before.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from projects import FIRST_TASK, bytecode_env, make_project

TOKEN = "bench"
DIRECT = """
import asyncio, sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from taskpack.layout import load_registry
registry = load_registry(Path(sys.argv[1]))
asyncio.run(registry.run(sys.argv[2], {}))
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_start(base: Path, env: dict[str, str]) -> float:
    """Seconds from spawning the server to its first successful task run."""
    port = free_port()
    env = {**env, "HOST": "127.0.0.1", "PORT": str(port), "TASKPACK_TASKS_TOKEN": TOKEN}
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/_nitro/tasks/{FIRST_TASK}", data=b"{}", method="POST",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, str(base / "index.py")], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    if response.status == 200:
                        return time.perf_counter() - start
            except (urllib.error.URLError, ConnectionError):
                if process.poll() is not None:
                    raise RuntimeError("the server exited") from None
                time.sleep(0.002)
    finally:
        process.terminate()
        process.wait(30)


def direct_start(base: Path, env: dict[str, str]) -> float:
    """Seconds from spawning an interpreter to its first run_task returning."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", DIRECT, str(base), FIRST_TASK], check=True,
                   env={k: v for k, v in env.items() if k != "PYTHONPATH"})
    return time.perf_counter() - start


def runtime_of(rev: str, bundle: Path) -> None:
    """Replace the runtime (``taskpack/``) of ``bundle`` with git revision
    ``rev``'s."""
    repo = Path(__file__).resolve().parent.parent
    archive = subprocess.run(["git", "-C", str(repo), "archive", rev, "taskpack"],
                             check=True, capture_output=True).stdout
    shutil.rmtree(bundle / "taskpack")
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(bundle, filter="data")


def before_after(rev: str, sizes: list[int], repeats: int) -> None:
    """Cold start to the first 200 on ``/_health``: the runtime of ``rev``
    against this checkout's, alternating."""
    from vs_nitro import Side, cold_start

    taskpack = str(Path(sys.executable).with_name("taskpack"))
    print(f"Python {platform.python_version()}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f} at start; {repeats} starts per side, alternating; "
          f"before = runtime of {rev}\n")
    print("| tasks | before: median (q1-q3) | after: median (q1-q3) | after/before |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            root = make_project(Path(tmp) / f"p{size}", size, tasks_api=True)
            subprocess.run([taskpack, "build", "--root", str(root), "--preset", "server"],
                           check=True, capture_output=True)
            sides = []
            for name in ("before", "after"):
                bundle = Path(tmp) / f"{name}{size}"
                shutil.copytree(root / ".output" / "server", bundle)
                if name == "before":
                    runtime_of(rev, bundle)
                run = Path(tmp) / f"run-{name}{size}"
                run.mkdir()
                side = Side(name, [sys.executable, str(bundle / "index.py")], run,
                            bytecode_env(run), run / "server.log")
                cold_start(side)  # writes the bytecode caches, as a first start does
                sides.append(side)
            times: dict[str, list[float]] = {"before": [], "after": []}
            for index in range(repeats):
                for side in sides if index % 2 == 0 else sides[::-1]:
                    times[side.name].append(cold_start(side) * 1000)
            cells = []
            for name in ("before", "after"):
                q1, median, q3 = statistics.quantiles(times[name], n=4)
                cells.append(f"{median:.0f} ms ({q1:.0f}-{q3:.0f})")
            ratio = statistics.median(times["after"]) / statistics.median(times["before"])
            print(f"| {size:,} | {cells[0]} | {cells[1]} | {ratio:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10,1000")
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--baseline", metavar="REV",
                        help="compare /_health cold start with the runtime of git revision REV")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    if args.baseline:
        before_after(args.baseline, sizes, args.repeats)
        return
    taskpack = str(Path(sys.executable).with_name("taskpack"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        env = bytecode_env(Path(tmp))
        bases = []
        for size in sizes:
            root = make_project(Path(tmp) / f"p{size}", size, tasks_api=True)
            subprocess.run([taskpack, "build", "--root", str(root)], check=True,
                           capture_output=True)
            bases.append(root / ".output" / "server")
            server_start(bases[-1], env)  # warm the page cache and write .pyc files once
        # Interleave the sizes so drifts in machine load hit them alike.
        served: list[list[float]] = [[] for _ in sizes]
        direct: list[list[float]] = [[] for _ in sizes]
        for _ in range(args.repeats):
            for index, base in enumerate(bases):
                served[index].append(server_start(base, env))
                direct[index].append(direct_start(base, env))
        for index, size in enumerate(sizes):
            rows.append((size, statistics.median(served[index]),
                         statistics.median(direct[index])))
    base_row = rows[0]
    print(f"Python {platform.python_version()}, {os.cpu_count()} CPUs, median of "
          f"{args.repeats}; ratios to {base_row[0]} tasks (the baseline)\n")
    print("| tasks | server: start → first task run | ratio | run_task only | ratio |")
    print("|---|---|---|---|---|")
    for size, served, direct in rows:
        print(f"| {size:,} | {served * 1000:.0f} ms | {served / base_row[1]:.2f}x "
              f"| {direct * 1000:.0f} ms | {direct / base_row[2]:.2f}x |")


if __name__ == "__main__":
    main()
