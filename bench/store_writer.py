"""What recording runs in the SQLite store costs the serving process.

Run: ``.venv/bin/python bench/store_writer.py`` (``--seconds S``, ``--rounds N``).

An event loop stands for a server's: it answers "requests" as fast as it
can, each a fixed amount of Python work (``--work-us``, calibrated with no
writer running: by default what a request costs the built server, ~100 µs),
a payload decoded, a result encoded, an answer sent on a socket (a system
call that lets the writer take the GIL, as a server's socket calls do) and
one run recorded in a real
:class:`~taskpack.store.sqlite.SQLiteStore` (a fresh file), whose writer
thread competes with it for the GIL as it does in a server. Each round prints:

* requests/s of the loop (what the writer leaves it) and runs lost (the
  buffer was full: the writer did not keep up);
* µs of CPU the writer thread spent per run stored (``/proc/self/task/<id>/stat``);
* transactions (batches written) per second and runs per transaction;
* the loop thread's CPU share.

Then ``flush`` and ``close`` are timed. Compare two checkouts by running
the script with each on ``PYTHONPATH``, alternating.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

from taskpack.store import RunRecord
from taskpack.store.sqlite import SQLiteStore

TICKS = os.sysconf("SC_CLK_TCK")


def thread_cpu(native_id: int) -> float:
    """Seconds of CPU (user + system) thread ``native_id`` of this process used."""
    fields = Path(f"/proc/self/task/{native_id}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def writer_thread() -> threading.Thread:
    return next(t for t in threading.enumerate() if t.name.startswith("taskpack-store:"))


def work(rounds: int) -> int:
    """Python work standing for a request's (parsing, routing, the task)."""
    total = 0
    for n in range(rounds):
        total += len(str(n))
    return total


def calibrate(micros: float) -> int:
    """Rounds of :func:`work` that take ``micros`` µs here, now."""
    rounds = 1000
    while True:
        started = time.perf_counter()
        work(rounds)
        took = time.perf_counter() - started
        if took > 0.01:
            return max(1, int(rounds * micros / (took * 1e6)))
        rounds *= 2


async def serve(store: SQLiteStore, seconds: float, rounds: int) -> dict[str, float]:
    batches = 0
    write = store._write_runs

    def counted(batch: list[RunRecord]) -> None:
        nonlocal batches
        batches += 1
        write(batch)

    store._write_runs = counted  # type: ignore[method-assign]
    body = b'{"payload": {"name": "world", "n": 12}}'
    host = f"bench:{os.getpid()}"
    answers, peer = socket.socketpair()
    loop_thread = threading.get_native_id()
    done = 0
    started = time.monotonic()
    writer = writer_thread()
    assert writer.native_id is not None
    writer_before, loop_before = thread_cpu(writer.native_id), thread_cpu(loop_thread)
    while (now := time.monotonic()) - started < seconds:
        for _ in range(20):  # a burst, then let other callbacks in
            work(rounds)
            payload = json.loads(body)["payload"]
            result = json.dumps({"hello": payload["name"], "n": payload["n"]})
            begun = time.time()
            answers.send(result.encode())
            store.record_run(RunRecord(os.urandom(16).hex(), "hello", "http", "0" * 16, begun,
                                       time.time(), 0.1, 1, "ok", None, host, payload,
                                       json.loads(result)))
            done += 1
        peer.recv(65536)
        await asyncio.sleep(0)
    elapsed = now - started
    writer_cpu = thread_cpu(writer.native_id) - writer_before
    loop_cpu = thread_cpu(loop_thread) - loop_before
    assert await store.flush(30)
    store._write_runs = write  # type: ignore[method-assign]
    answers.close()
    peer.close()
    stored = done - store.buffer.lost_runs
    return {"req/s": done / elapsed, "lost": store.buffer.lost_runs,
            "writer µs/run": writer_cpu / max(stored, 1) * 1e6, "tx/s": batches / elapsed,
            "runs/tx": stored / max(batches, 1),
            "loop CPU %": loop_cpu / elapsed * 100}


async def one_round(folder: Path, seconds: float, rounds: int) -> dict[str, float]:
    store = SQLiteStore("sqlite:///store.sqlite", root=folder)
    await store.open()
    figures = await serve(store, seconds, rounds)
    store.record_run(RunRecord("last", "hello", "http", "0" * 16, 1.0, 2.0, 1.0, 1, "ok"))
    started = time.perf_counter()
    assert await store.flush(5)
    figures["flush ms"] = (time.perf_counter() - started) * 1000
    store.record_run(RunRecord("closing", "hello", "http", "0" * 16, 1.0, 2.0, 1.0, 1, "ok"))
    started = time.perf_counter()
    await store.close()
    figures["close ms"] = (time.perf_counter() - started) * 1000
    (folder / "store.sqlite").unlink()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work-us", type=float, default=100.0)
    args = parser.parse_args()
    logging.getLogger("taskpack.store").setLevel(logging.CRITICAL)  # "runs are dropped"
    work_rounds = calibrate(args.work_us)
    rounds = []
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.rounds):
            figures = asyncio.run(one_round(Path(folder), args.seconds, work_rounds))
            rounds.append(figures)
            print("  ".join(f"{name} {value:,.1f}" for name, value in figures.items()),
                  flush=True)
    print("median: " + "  ".join(f"{name} {statistics.median(r[name] for r in rounds):,.1f}"
                                 for name in rounds[0]))


if __name__ == "__main__":
    main()
