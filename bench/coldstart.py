"""Cold start of a built server bundle: 10 tasks against 1,000.

Run: ``.venv/bin/python bench/coldstart.py`` (``--sizes 10,1000``,
``--repeats 11``). For each size it generates a project (one schedule per 50
tasks, task API on), builds it with the ``server`` preset, then measures,
in fresh processes and with this interpreter (which has the bundle's
requirements: uvicorn, croniter):

* **server**: from starting ``python index.py`` to the first successful
  ``POST /_nitro/tasks/<task>`` (polled every 2 ms): interpreter start,
  imports, manifest, scheduler start, uvicorn, lazy import of the one task;
* **run_task**: from starting ``python -c`` to the first successful
  ``run_task`` on the bundle's registry, no server.

Sizes are measured in turn, round after round; medians of the rounds, with
ratios to the smallest size (the baseline, measured in the same run). Lazy
task imports should keep the two close.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from projects import FIRST_TASK, make_project

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


def server_start(base: Path) -> float:
    """Seconds from spawning the server to its first successful task run."""
    port = free_port()
    env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), "TASKPACK_TASKS_TOKEN": TOKEN}
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


def direct_start(base: Path) -> float:
    """Seconds from spawning an interpreter to its first run_task returning."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", DIRECT, str(base), FIRST_TASK], check=True,
                   env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10,1000")
    parser.add_argument("--repeats", type=int, default=11)
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    taskpack = str(Path(sys.executable).with_name("taskpack"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        bases = []
        for size in sizes:
            root = make_project(Path(tmp) / f"p{size}", size, tasks_api=True)
            subprocess.run([taskpack, "build", "--root", str(root)], check=True,
                           capture_output=True)
            bases.append(root / ".output" / "server")
            server_start(bases[-1])  # warm the page cache and write .pyc files once
        # Interleave the sizes so drifts in machine load hit them alike.
        served: list[list[float]] = [[] for _ in sizes]
        direct: list[list[float]] = [[] for _ in sizes]
        for _ in range(args.repeats):
            for index, base in enumerate(bases):
                served[index].append(server_start(base))
                direct[index].append(direct_start(base))
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
