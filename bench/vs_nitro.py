"""The built ``server`` bundle against Nitro's ``node_server``, side by side.

Run: ``.venv/bin/python bench/vs_nitro.py`` (``make bench`` runs it too).
Options: ``--rounds N`` (default 3), ``--duration S`` per load run (5),
``--sizes 10,1000``, ``--starts N`` cold starts per side per round (5),
``--python PATH``: the interpreter the bundles run on (default: the one
running this script; docs/benchmarks.md compares two builds of CPython).

What it does:

1. installs ``nitropack@2.13.6`` with npm into ``.cache/nitro-bench`` (once;
   ignored by git) and ``wrk`` from Debian's packages if it is missing;
2. generates equivalent projects of 10 and 1,000 tasks: taskpack's
   (``bench/projects.py``: tasks in folders of 100, one cron per 50 tasks,
   the task API on) and Nitro's (the same task files in TypeScript, the
   same crons). Nitro v2 serves its task API only in dev, so the Nitro
   project has its own routes: ``POST /_nitro/tasks/[name]`` (the same
   bearer check against ``TASKPACK_TASKS_TOKEN``, the payload from query and
   body, ``runTask``) and ``GET /_health``;
3. builds both (``taskpack build --preset server``, ``nitro build`` with the
   ``node-server`` preset) and runs each as users do: ``python
   .output/server/index.py`` (in a virtual environment holding just the
   bundle's ``requirements.txt``, as deployed: :func:`projects.deployed_python`;
   bytecode caches written and used as a deployment does)
   and ``node .output/server/index.mjs``, one process each, every run
   recorded in taskpack's store and logged (one line per run, to a file),
   exactly as shipped;
4. measures, alternating taskpack and Nitro (A B A B ...) so the machine's
   load hits both alike: cold start (process start to the first 200 on
   ``/_health``), requests/s and p99 latency of ``POST
   /_nitro/tasks/group0:task00000`` with wrk (1 thread, 50 connections) and
   the load generator's own CPU, idle and peak RSS; then ``server_cluster``
   with ``WORKERS=2`` against ``WORKERS=1``, and Nitro's ``node_cluster``
   with 2 workers against 1 as the peer (the four alternating).

Prints Markdown tables: medians per side, and the taskpack/Nitro ratio as
the median of the per-round ratios with their min-max.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from http_api import ensure_wrk, free_port
from projects import FIRST_TASK, bytecode_env, deployed_python, make_project

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "nitro-bench"
NITRO = "nitropack@2.13.6"
TOKEN = "bench-token"
CONNECTIONS = 50
PATH = f"/_nitro/tasks/{FIRST_TASK}"

NITRO_TASK = """export default defineTask({{
  meta: {{ description: "Task number {index}" }},
  run(event) {{
    return {{ result: {{ task: {index}, payload: event.payload }} }};
  }},
}});
"""
NITRO_HEALTH = """export default defineEventHandler(() => ({{ status: "ok", tasks: {tasks} }}));
"""
NITRO_TASK_ROUTE = """const TOKEN = (process.env.TASKPACK_TASKS_TOKEN || "").trim();

export default defineEventHandler(async (event) => {
  const auth = getHeader(event, "authorization") || "";
  const space = auth.indexOf(" ");
  const scheme = space < 0 ? auth : auth.slice(0, space);
  const given = space < 0 ? "" : auth.slice(space + 1).trim();
  if (!TOKEN || scheme.toLowerCase() !== "bearer" || given !== TOKEN) {
    throw createError({ statusCode: 401, message: "invalid bearer token" });
  }
  const name = getRouterParam(event, "name");
  const body = event.method === "POST" ? await readBody(event) : undefined;
  const payload = { ...getQuery(event), ...((body && body.payload) || {}) };
  return await runTask(name, { payload, context: {} });
});
"""
WRK_SCRIPT = f"""wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer {TOKEN}"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{{"payload":{{"n":1}}}}'
"""


# -- setup ------------------------------------------------------------------------


def ensure_nitro() -> Path:
    """``node_modules`` with nitropack, installed once into the cache."""
    modules = CACHE / "node_modules"
    if not (modules / "nitropack" / "package.json").is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        (CACHE / "package.json").write_text('{"private": true}\n')
        print(f"installing {NITRO} into {CACHE} (npm, once)", file=sys.stderr, flush=True)
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", NITRO],
                       cwd=CACHE, check=True, stdout=subprocess.DEVNULL)
    return modules


def make_nitro_project(root: Path, tasks: int, modules: Path,
                       preset: str = "node-server") -> Path:
    """The Nitro twin of :func:`projects.make_project` (``preset``:
    ``node-server``, or ``node-cluster`` for the cluster comparison)."""
    root.mkdir(parents=True)
    (root / "node_modules").symlink_to(modules)
    for index in range(tasks):
        path = root / "tasks" / f"group{index // 100}" / f"task{index:05d}.ts"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(NITRO_TASK.format(index=index))
    crons: dict[str, list[str]] = {}
    for index in range(0, tasks, 50):
        slot = index // 50
        crons.setdefault(f"{slot % 60} {slot // 60} * * *", []).append(
            f"group{index // 100}:task{index:05d}")
    (root / "nitro.config.ts").write_text(
        'import { defineNitroConfig } from "nitropack/config";\n'
        "export default defineNitroConfig({\n"
        f'  preset: "{preset}",\n'
        "  experimental: { tasks: true },\n"
        f"  scheduledTasks: {json.dumps(crons)},\n"
        "});\n")
    routes = root / "routes"
    (routes / "_nitro" / "tasks").mkdir(parents=True)
    (routes / "_health.get.ts").write_text(NITRO_HEALTH.format(tasks=tasks))
    (routes / "_nitro" / "tasks" / "[name].post.ts").write_text(NITRO_TASK_ROUTE)
    return root


def timed(argv: list[str], cwd: Path) -> float:
    began = time.perf_counter()
    subprocess.run(argv, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - began


# -- measuring one server -------------------------------------------------------------


@dataclass
class Side:
    """How to start one server: argv, cwd and extra environment."""

    name: str
    argv: list[str]
    cwd: Path
    env: dict[str, str]
    log: Path

    def start(self, port: int) -> subprocess.Popen[bytes]:
        env = {**self.env, "PORT": str(port), "HOST": "127.0.0.1",
               "NITRO_HOST": "127.0.0.1", "TASKPACK_TASKS_TOKEN": TOKEN}
        with self.log.open("ab") as out:
            return subprocess.Popen(self.argv, cwd=self.cwd, env=env, stdout=out,
                                    stderr=subprocess.STDOUT)


def health_status(port: int) -> int:
    """The status of ``GET /_health`` (0 when nothing answers yet)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"GET /_health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            head = sock.recv(64)
    except OSError:
        return 0
    match = re.match(rb"HTTP/1\.[01] (\d{3})", head)
    return int(match.group(1)) if match else 0


def cold_start(side: Side) -> float:
    """Seconds from process start to the first 200 on ``/_health``."""
    port = free_port()
    began = time.perf_counter()
    proc = side.start(port)
    try:
        while health_status(port) != 200:
            if proc.poll() is not None:
                raise SystemExit(f"{side.name} exited with {proc.returncode}; see {side.log}")
            if time.perf_counter() - began > 30:
                raise SystemExit(f"{side.name} did not answer /_health in 30 s; see {side.log}")
            time.sleep(0.002)
        return time.perf_counter() - began
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def rss_kib(pid: int, key: str) -> int:
    """``VmRSS``/``VmHWM`` of ``pid`` plus its children's (cluster workers)."""
    total = 0
    for one in (pid, *children(pid)):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{one}/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    total += int(line.split()[1])
    return total


def children(pid: int) -> list[int]:
    with contextlib.suppress(OSError):
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        return [int(child) for child in text.split()]
    return []


@dataclass
class Load:
    rps: float
    p99_ms: float
    wrk_cpu: float  # share of one core the load generator used
    idle_mib: float
    peak_mib: float


def load(side: Side, wrk: str, script: Path, duration: int) -> Load:
    """Start ``side``, warm it up, then one wrk run against the task API."""
    port = free_port()
    proc = side.start(port)
    try:
        deadline = time.monotonic() + 30
        while health_status(port) != 200:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{side.name} did not start; see {side.log}")
            time.sleep(0.01)
        url = f"http://127.0.0.1:{port}{PATH}"
        run_wrk(wrk, script, url, 1)  # warm-up: the task's first import, JIT
        time.sleep(0.5)
        idle = rss_kib(proc.pid, "VmRSS")
        out, cpu = run_wrk(wrk, script, url, duration)
        peak = rss_kib(proc.pid, "VmHWM")
    finally:
        stop(proc)
    if "Non-2xx or 3xx responses" in out or "Socket errors" in out:
        raise SystemExit(f"wrk saw errors against {side.name}:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out).groups()  # type: ignore[union-attr]
    p99 = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    return Load(rps, p99, cpu / duration, idle / 1024, peak / 1024)


def run_wrk(wrk: str, script: Path, url: str, duration: int) -> tuple[str, float]:
    """wrk's output and the CPU seconds (user + system) it used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run([wrk, "-t1", f"-c{CONNECTIONS}", f"-d{duration}s", "--latency",
                          "-s", str(script), url], check=True, capture_output=True,
                         text=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return out, cpu


# -- reporting ------------------------------------------------------------------------


@dataclass
class Pair:
    """Per-round samples of one measurement for A (taskpack) and B (Nitro)."""

    label: str
    unit: str
    a: list[float] = field(default_factory=list)
    b: list[float] = field(default_factory=list)

    def row(self, fmt: Callable[[float], str]) -> str:
        ratios = [x / y for x, y in zip(self.a, self.b, strict=True) if y]
        ratio = (f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"
                 if ratios else "-")
        return (f"| {self.label} | {fmt(statistics.median(self.a))} | "
                f"{fmt(statistics.median(self.b))} | {ratio} |")


def table(title: str, a: str, b: str, pairs: list[tuple[Pair, Callable[[float], str]]]) -> None:
    print(f"\n{title}\n")
    print(f"| measurement | {a} | {b} | ratio {a}/{b}: median (min-max) |")
    print("|---|---|---|---|")
    for pair, fmt in pairs:
        print(pair.row(fmt))
    sys.stdout.flush()


def ms(value: float) -> str:
    return f"{value * 1000:.0f} ms"


def count(value: float) -> str:
    return f"{value:,.0f}"


def mib(value: float) -> str:
    return f"{value:.1f} MiB"


def p99(value: float) -> str:
    return f"{value:.2f} ms"


def share(value: float) -> str:
    return f"{value * 100:.0f}% of a core"


# -- main -----------------------------------------------------------------------------


@contextlib.contextmanager
def workspace() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="taskpack-vs-nitro-") as folder:
        yield Path(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--sizes", default="10,1000", help="task counts, comma-separated")
    parser.add_argument("--starts", type=int, default=5, help="cold starts per side per round")
    parser.add_argument("--python", default=sys.executable,
                        help="the interpreter the bundles run on (default: this one)")
    args = parser.parse_args()
    if not shutil.which("npm") or not shutil.which("node"):
        raise SystemExit("bench/vs_nitro.py needs node and npm (Node 20+)")
    wrk = ensure_wrk()
    modules = ensure_nitro()
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    wrk_version = subprocess.run([wrk, "--version"], capture_output=True, text=True).stdout
    version = subprocess.run([args.python, "-c", "import sys; print(sys.version.split()[0])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    print(f"Python {version} ({args.python}), Node {node}, {NITRO}, "
          f"{wrk_version.split(' [')[0].strip()}; {os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} at start; {args.rounds} rounds "
          f"alternating taskpack and Nitro; wrk -t1 -c{CONNECTIONS} -d{args.duration}s "
          f"POST {PATH}")
    taskpack = Path(sys.executable).with_name("taskpack")
    with workspace() as work:
        script = work / "post.lua"
        script.write_text(WRK_SCRIPT)
        for size in (int(s) for s in args.sizes.split(",")):
            tp_root = make_project(work / f"taskpack-{size}", size, tasks_api=True)
            nitro_root = make_nitro_project(work / f"nitro-{size}", size, modules)
            tp_build = timed([str(taskpack), "build", "--preset", "server"], tp_root)
            nitro_build = timed(["node", str(modules / "nitropack" / "dist" / "cli" / "index.mjs"),
                                 "build"], nitro_root)
            env = bytecode_env(work / f"run-{size}")
            run_dir = work / f"run-{size}"
            run_dir.mkdir()
            bundle = tp_root / ".output" / "server"
            tp = Side("taskpack", [deployed_python(bundle / "requirements.txt", args.python),
                                   str(bundle / "index.py")],
                      run_dir, env, work / f"taskpack-{size}.log")
            nitro = Side("nitro", ["node", str(nitro_root / ".output/server/index.mjs")],
                         nitro_root, dict(os.environ), work / f"nitro-{size}.log")
            cold_start(tp)  # writes the bytecode caches, as a deployment's first start does
            starts = Pair("cold start (start → first 200 on /_health)", "s")
            rps = Pair("requests/s", "")
            lat = Pair("p99 latency", "ms")
            wrk_cpu = Pair("wrk's CPU", "")
            idle = Pair("RSS idle", "MiB")
            peak = Pair("RSS peak (under load)", "MiB")
            for _ in range(args.rounds):
                a = [cold_start(tp) for _ in range(args.starts)]
                b = [cold_start(nitro) for _ in range(args.starts)]
                starts.a.append(statistics.median(a))
                starts.b.append(statistics.median(b))
                for side, which in ((tp, "a"), (nitro, "b")):
                    got = load(side, wrk, script, args.duration)
                    for pair, value in ((rps, got.rps), (lat, got.p99_ms), (wrk_cpu, got.wrk_cpu),
                                        (idle, got.idle_mib), (peak, got.peak_mib)):
                        getattr(pair, which).append(value)
            builds = Pair("build (whole command, once)", "s", [tp_build], [nitro_build])
            table(f"{size:,} tasks, one process each:", "taskpack", "Nitro", [
                (rps, count), (lat, p99), (starts, ms), (idle, mib), (peak, mib),
                (wrk_cpu, share), (builds, ms)])
            runs = sum(1 for line in tp.log.read_text().splitlines() if " run: " in line)
            print(f"\n(taskpack logged {runs:,} run lines for {size:,} tasks, one per run.)")
        cluster(work, taskpack, modules, wrk, script, args)
        print(f"\nload average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


def cluster(work: Path, taskpack: Path, modules: Path, wrk: str, script: Path,
            args: argparse.Namespace) -> None:
    """``server_cluster`` with 2 workers against 1, and Nitro's
    ``node_cluster`` with 2 workers against 1 as the peer (both 10 tasks),
    the four alternating: what 2 processes gain here, on 2 cores that wrk
    shares, for taskpack and for Nitro alike."""
    size = 10
    tp_root = work / f"taskpack-{size}"
    subprocess.run([str(taskpack), "build", "--preset", "server_cluster", "--output",
                    ".output-cluster"], cwd=tp_root, check=True, capture_output=True)
    nitro_root = make_nitro_project(work / "nitro-cluster", size, modules, "node-cluster")
    subprocess.run(["node", str(modules / "nitropack" / "dist" / "cli" / "index.mjs"), "build"],
                   cwd=nitro_root, check=True, capture_output=True)
    cluster_dir = work / "run-cluster"
    cluster_dir.mkdir()
    bundle = tp_root / ".output-cluster" / "server"
    argv = [deployed_python(bundle / "requirements.txt", args.python), str(bundle / "index.py")]
    env = bytecode_env(cluster_dir)
    nitro_argv = ["node", str(nitro_root / ".output/server/index.mjs")]
    sides = {
        ("taskpack", 2): Side("server_cluster WORKERS=2", argv, cluster_dir,
                              {**env, "WORKERS": "2"}, work / "cluster-2.log"),
        ("taskpack", 1): Side("server_cluster WORKERS=1", argv, cluster_dir,
                              {**env, "WORKERS": "1"}, work / "cluster-1.log"),
        ("nitro", 2): Side("node_cluster 2 workers", nitro_argv, nitro_root,
                           {**os.environ, "NITRO_CLUSTER_WORKERS": "2"},
                           work / "nitro-cluster-2.log"),
        ("nitro", 1): Side("node_cluster 1 worker", nitro_argv, nitro_root,
                           {**os.environ, "NITRO_CLUSTER_WORKERS": "1"},
                           work / "nitro-cluster-1.log"),
    }
    pairs = {name: (Pair("requests/s", ""), Pair("p99 latency", "ms"), Pair("wrk's CPU", ""))
             for name in ("taskpack", "nitro")}
    for _ in range(args.rounds):
        for (name, workers), side in sides.items():
            got = load(side, wrk, script, args.duration)
            which = "a" if workers == 2 else "b"
            for pair, value in zip(pairs[name], (got.rps, got.p99_ms, got.wrk_cpu),
                                   strict=True):
                getattr(pair, which).append(value)
    for name, title in (("taskpack", "server_cluster, 10 tasks:"),
                        ("nitro", "Nitro node_cluster (the peer), 10 tasks:")):
        rps, lat, wrk_cpu = pairs[name]
        table(title, "2 workers", "1 worker", [(rps, count), (lat, p99), (wrk_cpu, share)])


if __name__ == "__main__":
    main()
