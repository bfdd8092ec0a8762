"""The job queue against Procrastinate 3.10 and PgQueuer 1.6, on one PostgreSQL.

Run: ``.venv/bin/python bench/job_queue.py`` (``--jobs``, ``--workers``,
``--concurrency``, ``--latency-jobs``, ``--rounds``). ``--server private``
starts a PostgreSQL of its own for the run (``tests/pg.py``'s throwaway
server: fsync off, nobody else's load on it), so the figures measure the
queues rather than the disk; by default the machine's server on
127.0.0.1:5432 (``TASKPACK_BENCH_PG``), shared with everything else. The peers are
installed by this script into ``.cache/bench-peers`` (an ignored venv), never
into the project's. Each round, for each system in an order that rotates
every round (A/B alternation, so a load spike on a shared machine does not
always hit the same system):

1. a fresh database, the system's schema;
2. enqueue ``--jobs`` no-op jobs (no worker running), timed;
3. start ``--workers`` worker processes, ``--concurrency`` each; drain
   throughput is jobs / (last job start - first job start), so process
   start-up is not counted;
4. with the workers idle, ``--latency-jobs`` jobs enqueued one at a time
   20 ms apart: enqueue→start latency p50/p99 (the job carries its enqueue
   time; the task compares with its start);
5. workers killed, database dropped.

Prints a Markdown table (medians over the rounds) and the ratios of taskpack
to the best peer.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parent.parent
DRIVER = Path(__file__).resolve().parent / "job_queue_drivers.py"
PEERS = REPO / ".cache" / "bench-peers"
PEER_PINS = ("procrastinate==3.10.0", "pgqueuer==1.6.0", "psycopg[binary]>=3.2")
SERVER = os.environ.get("TASKPACK_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
sys.path.insert(0, str(REPO))  # tests.pg: the private server
SYSTEMS = ("taskpack", "procrastinate", "pgqueuer")


def peer_python() -> Path:
    """The peers' venv (created on first use)."""
    python = PEERS / "bin" / "python"
    stamp = PEERS / ".installed"
    if not stamp.is_file() or stamp.read_text() != " ".join(PEER_PINS):
        subprocess.run([sys.executable, "-m", "venv", str(PEERS)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PEER_PINS], check=True)
        stamp.write_text(" ".join(PEER_PINS))
    return python


def python_for(system: str) -> str:
    return sys.executable if system == "taskpack" else str(peer_python())


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


def admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(SERVER, autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


def driver(system: str, role: str, url: str, stats: Path, **options: Any) -> list[str]:
    argv = [python_for(system), str(DRIVER), system, role, url, str(stats)]
    for key, value in options.items():
        argv += [f"--{key}", str(value)]
    return argv


def read(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
        return data
    except (OSError, ValueError):
        return {}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def run_system(system: str, args: argparse.Namespace, work: Path) -> dict[str, float]:
    name = "bench_" + uuid.uuid4().hex[:10]
    admin(f'CREATE DATABASE "{name}"')
    url = with_database(SERVER, name)
    workers: list[subprocess.Popen[bytes]] = []
    try:
        subprocess.run(driver(system, "setup", url, work / "setup.json"), check=True)
        enqueue_stats = work / f"{system}-enqueue.json"
        subprocess.run(driver(system, "enqueue", url, enqueue_stats, jobs=args.jobs), check=True)
        enqueue_seconds = read(enqueue_stats)["seconds"]
        files = [work / f"{system}-worker{i}.json" for i in range(args.workers)]
        for file in files:
            file.unlink(missing_ok=True)
        log = (work / f"{system}-workers.log").open("wb")
        workers = [subprocess.Popen(driver(system, "worker", url, file,
                                           concurrency=args.concurrency),
                                    stdout=log, stderr=subprocess.STDOUT) for file in files]

        def totals() -> list[dict[str, Any]]:
            return [read(file) for file in files]

        def wait_count(target: int, timeout: float) -> list[dict[str, Any]]:
            deadline = time.monotonic() + timeout
            while True:
                found = totals()
                if sum(s.get("count", 0) for s in found) >= target:
                    return found
                for worker in workers:
                    if worker.poll() is not None:
                        raise SystemExit(f"{system} worker exited {worker.returncode}; "
                                         f"see {log.name}")
                if time.monotonic() > deadline:
                    raise SystemExit(f"{system}: timed out at "
                                     f"{sum(s.get('count', 0) for s in found)}/{target} jobs")
                time.sleep(0.05)

        drained = wait_count(args.jobs, 600)
        first = min(s["first"] for s in drained if s.get("first"))
        last = max(s["last"] for s in drained if s.get("last"))
        time.sleep(0.5)  # idle workers
        latency_stats = work / f"{system}-latency.json"
        subprocess.run(driver(system, "latency", url, latency_stats, jobs=args.latency_jobs,
                              spaced=0.02), check=True)
        done = wait_count(args.jobs + args.latency_jobs, 120)
        latencies = [value for s in done for value in s.get("latencies", [])]
        return {
            "enqueue_per_s": args.jobs / enqueue_seconds,
            "drain_per_s": args.jobs / max(last - first, 1e-9),
            "p50_ms": statistics.median(latencies),
            "p99_ms": percentile(latencies, 0.99),
        }
    finally:
        for worker in workers:
            worker.kill()
            worker.wait()
        admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--latency-jobs", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--server", default="shared", choices=["shared", "private"])
    args = parser.parse_args()
    if args.server == "private":
        from tests.pg import throwaway_server

        global SERVER
        with throwaway_server() as server:
            SERVER = server.url
            print(f"private PostgreSQL server (fsync off) at {server.url}", flush=True)
            run(args)
    else:
        print(f"shared PostgreSQL server {SERVER}", flush=True)
        run(args)


def run(args: argparse.Namespace) -> None:
    systems = [s for s in args.systems.split(",") if s]
    work = REPO / ".cache" / "bench-queue"
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[dict[str, float]]] = {s: [] for s in systems}
    for round_ in range(args.rounds):
        order = systems[round_ % len(systems):] + systems[:round_ % len(systems)]
        for system in order:
            result = run_system(system, args, work)
            results[system].append(result)
            print(f"round {round_ + 1} {system}: " +
                  ", ".join(f"{k}={v:,.1f}" for k, v in result.items()), flush=True)
    print(f"\n{args.jobs:,} no-op jobs, {args.workers} worker processes x "
          f"{args.concurrency} concurrency, {args.latency_jobs} latency probes, "
          f"{args.rounds} round(s) alternating; medians.\n")
    print("| system | enqueue jobs/s | drain jobs/s | latency p50 ms | latency p99 ms |")
    print("|---|---:|---:|---:|---:|")
    medians: dict[str, dict[str, float]] = {}
    for system in systems:
        rows = results[system]
        medians[system] = {key: statistics.median(r[key] for r in rows) for key in rows[0]}
        m = medians[system]
        print(f"| {system} | {m['enqueue_per_s']:,.0f} | {m['drain_per_s']:,.0f} | "
              f"{m['p50_ms']:.2f} | {m['p99_ms']:.2f} |")
    peers = [s for s in systems if s != "taskpack"]
    if "taskpack" in medians and peers:
        best = max(peers, key=lambda s: medians[s]["drain_per_s"])
        ours = medians["taskpack"]
        print(f"\ntaskpack / best peer ({best}): drain x"
              f"{ours['drain_per_s'] / medians[best]['drain_per_s']:.2f}, latency p50 x"
              f"{ours['p50_ms'] / medians[best]['p50_ms']:.2f}")


if __name__ == "__main__":
    main()
