"""Throughput and tail latency of the HTTP task API of the built ``server``
bundle, as shipped.

Run: ``.venv/bin/python bench/http_api.py`` (``--duration S``, ``--connections
1,64``). Installs ``wrk`` from Debian packages if it is missing (needs apt).

``wrk`` (a separate process, 2 threads) drives two servers, each in its own
process on a free loopback port, in alternation (``--rounds`` runs each per
connection count; the table gives medians):

* baseline: a bare handler answering a fixed JSON body on the bundle's own
  server (:mod:`taskpack.http1`), the least any endpoint on that server
  can cost;
* taskpack: ``examples/basic`` built with the ``server`` preset (task API
  on) and run as users run it, ``python .output/server/index.py``: the
  bearer token checked, every run recorded in the store and logged (one
  line per run, to a file), nothing tuned. Asked ``GET
  /_nitro/tasks/echo:payload?field=value`` (a sync task: each run goes
  through a worker thread) and ``GET /_nitro/tasks/cms:update`` (an async
  task, run on the event loop).

Prints a Markdown table of requests/s and p99 latency with ratios to the
baseline. Note: concurrent requests for one task join the running call
(dedupe), so at high concurrency some requests share a run.
``bench/vs_nitro.py`` compares the same bundle with Nitro's.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "basic"
TOKEN = "bench-token"
# (column, server kind, path): the baseline first.
TARGETS = (
    ("bare handler (baseline)", "baseline", "/echo"),
    ("`echo:payload` (sync task)", "taskpack", "/_nitro/tasks/echo:payload?field=value"),
    ("`cms:update` (async task)", "taskpack", "/_nitro/tasks/cms:update"),
)

# -- the baseline (run in a child process: ``bench/http_api.py --serve baseline --port P``) --


def serve(port: int) -> None:
    """The baseline on the bundle's server (:mod:`taskpack.http1`): a
    handler answering a fixed JSON body, the least any endpoint on it costs."""
    import asyncio

    import uvloop

    from taskpack.http1 import Exchange, Request, Server
    from taskpack.serving import BACKLOG, bind

    body = b'{"result": {"field": "value"}}'
    headers = (("content-type", "application/json"),)

    async def answer(request: Request, exchange: Exchange) -> None:
        exchange.respond(200, headers, body)

    async def main() -> None:
        server = Server(answer, body_limit=1024 * 1024)
        await server.serve(bind("127.0.0.1", port), BACKLOG)
        await asyncio.Event().wait()  # until the driver terminates it

    uvloop.run(main())


def build_bundle(folder: Path) -> Path:
    """``examples/basic`` (its task API is on) built with ``server``: the
    entry file to run."""
    project = folder / "basic"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(".taskpack", ".output"))
    assert "tasks_api = true" in (project / "taskpack.toml").read_text()
    taskpack = Path(sys.executable).with_name("taskpack")
    subprocess.run([str(taskpack), "build", "--preset", "server"], cwd=project, check=True,
                   capture_output=True)
    return project / ".output" / "server" / "index.py"


# -- the driver ---------------------------------------------------------------------


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk not found: installing it with apt-get", file=sys.stderr)
    sudo = [] if _is_root() else ["sudo"]
    subprocess.run([*sudo, "apt-get", "install", "-y", "-q", "wrk"], check=True,
                   stdout=subprocess.DEVNULL)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk is still missing after apt-get install")
    return found


def _is_root() -> bool:
    return os.geteuid() == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"server on port {port} did not start")


def run_wrk(wrk: str, url: str, connections: int, duration: int) -> tuple[float, float]:
    """(requests/s, p99 latency in ms) from one wrk run."""
    threads = min(2, connections)
    out = subprocess.run(
        [wrk, f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency",
         "-H", f"Authorization: Bearer {TOKEN}", url],
        check=True, capture_output=True, text=True,
    ).stdout
    if re.search(r"Non-2xx or 3xx responses", out) or re.search(r"Socket errors", out):
        raise SystemExit(f"wrk saw errors:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out).groups()  # type: ignore[union-attr]
    p99 = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    return rps, p99


@contextlib.contextmanager
def server(argv: list[str], cwd: Path) -> Iterator[str]:
    """A server process started with ``argv`` (``{port}`` filled in); yields
    its base URL."""
    port = free_port()
    env = {**os.environ, "PORT": str(port), "HOST": "127.0.0.1", "TASKPACK_TASKS_TOKEN": TOKEN}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # bytecode caches, as a deployment has
    with (cwd / "server.log").open("ab") as log:
        proc = subprocess.Popen([arg.replace("{port}", str(port)) for arg in argv], cwd=cwd,
                                env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_listening(port, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", choices=("baseline",), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--connections", default="1,64", help="comma-separated counts")
    parser.add_argument("--rounds", type=int, default=3, help="runs per cell (median)")
    args = parser.parse_args()
    if args.serve:
        serve(args.port)
        return
    wrk = ensure_wrk()
    import httptools
    import uvloop

    version = subprocess.run([wrk, "--version"], capture_output=True, text=True).stdout
    print(f"Python {sys.version.split()[0]}, uvloop {uvloop.__version__}, "
          f"httptools {httptools.__version__}, "
          f"{version.split(' [')[0].strip()}, {args.duration} s per run\n")
    print(f"Median of {args.rounds} interleaved runs per cell; ratios to the baseline.\n")
    print("| connections | measurement | " + " | ".join(c for c, _, _ in TARGETS) + " |")
    print("|---|---|" + "---|" * len(TARGETS))
    work = Path(tempfile.mkdtemp(prefix="taskpack-http-api-"))
    entry = build_bundle(work)
    baseline = [sys.executable, __file__, "--serve", "baseline", "--port", "{port}"]
    with server(baseline, work) as base_url, server([sys.executable, str(entry)],
                                                    work) as tp_url:
        urls = [{"baseline": base_url, "taskpack": tp_url}[kind] + path
                for _, kind, path in TARGETS]
        for url in urls:
            run_wrk(wrk, url, 8, 1)  # warm-up: imports, first task load
        for connections in (int(c) for c in args.connections.split(",")):
            samples: list[list[tuple[float, float]]] = [[] for _ in urls]
            for _ in range(args.rounds):
                for cell, url in zip(samples, urls, strict=True):
                    cell.append(run_wrk(wrk, url, connections, args.duration))
            rps = [statistics.median(r for r, _ in cell) for cell in samples]
            p99 = [statistics.median(p for _, p in cell) for cell in samples]
            print(f"| {connections} | requests/s | {rps[0]:,.0f} | " + " | ".join(
                f"{v:,.0f} ({v / rps[0]:.2f}x)" for v in rps[1:]) + " |")
            print(f"| {connections} | p99 latency | {p99[0]:.2f} ms | " + " | ".join(
                f"{v:.2f} ms ({v / p99[0]:.2f}x)" for v in p99[1:]) + " |", flush=True)


if __name__ == "__main__":
    main()
