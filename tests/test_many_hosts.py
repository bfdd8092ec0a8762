"""Many hosts: each scheduled fire claimed exactly once (DESIGN §11).

Real server processes of one built bundle, a real PostgreSQL (or the
embedded SQLite store), real kill -9 and a real database restart. Each
process starts in a folder of its own (nothing shared but the store URL).
The project fires two tasks every second: ``tick`` without backfill and
``keep`` with a one-minute backfill window; each run appends one JSON line
(task, fire time, wall time, pid) to a file the test reads, and the store's
jobs show the claims (one job per task per won fire).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taskpack.store import Job
from tests import netns
from tests.helpers import all_jobs, all_runs, fire_seconds_of, read_store, write_files
from tests.pg import throwaway_server
from tests.servers import ServerProcess, free_port, wait_for

RECORD_ENV = "HOSTS_TEST_RECORD"

TASK = '''
import json, os, time
from taskpack import define_task

@define_task({options})
def run(event):
    line = json.dumps({{"task": "{name}", "scheduled": event.payload["scheduledTime"],
                        "at": time.time(), "pid": os.getpid()}})
    with open(os.environ["{env}"], "a") as out:
        out.write(line + "\\n")
'''

CONFIG = '''
[scheduled_tasks]
"* * * * * *" = ["tick", "keep"]
'''

LATE = 4.0
"""Seconds after its fire time by which an on-time run has started (the
tests' downtimes are longer, so a fire run late stands out)."""


def make_project(root: Path, keep_in_config: bool = False) -> Path:
    """``keep`` gets its window from ``define_task`` or from the config."""
    keep_options = "" if keep_in_config else 'backfill="1m"'
    config = CONFIG + ('[tasks."keep"]\nbackfill = "1m"\n' if keep_in_config else "")
    return write_files(root, {
        "tasks/tick.py": TASK.format(options="", name="tick", env=RECORD_ENV),
        "tasks/keep.py": TASK.format(options=keep_options, name="keep", env=RECORD_ENV),
        "taskpack.toml": config,
    })


def build(project: Path, output: Path, preset: str = "server") -> Path:
    taskpack = Path(sys.executable).with_name("taskpack")
    subprocess.run([str(taskpack), "build", "--root", str(project), "--preset", preset,
                    "--output", str(output)], check=True, capture_output=True)
    return output / "server" / "index.py"


class Hosts:
    """Server processes of one bundle; each in its own folder unless told."""

    def __init__(self, index: Path, tmp: Path, records: Path, **env: str) -> None:
        self.index = index
        self.tmp = tmp
        self.records = records
        self.env = env
        self.all: list[ServerProcess] = []

    def start(self, count: int, folder: Path | None = None, **env: str) -> list[ServerProcess]:
        started = []
        for _ in range(count):
            number = len(self.all)
            cwd = folder or self.tmp / f"host{number}"
            cwd.mkdir(parents=True, exist_ok=True)
            port = free_port()
            server = ServerProcess([sys.executable, str(self.index)],
                                   {"PORT": str(port), RECORD_ENV: str(self.records),
                                    **self.env, **env},
                                   self.tmp / f"host{number}.log", cwd=cwd)
            self.all.append(server)
            started.append(server)
        for server in started:
            server.wait_healthy(60)
        return started

    def stop_all(self) -> None:
        for server in self.all:
            if server.process.poll() is None:
                assert server.terminate() == 0, server.logs()

    def kill_all(self) -> None:
        for server in self.all:
            server.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {s.log.name}\n{s.logs()[-3000:]}" for s in self.all)


@pytest.fixture
def hosts_factory(tmp_path: Path) -> Iterator[list[Hosts]]:
    made: list[Hosts] = []
    yield made
    for hosts in made:
        hosts.kill_all()


def runs(records: Path) -> list[dict[str, Any]]:
    if not records.exists():
        return []
    return [json.loads(line) for line in records.read_text().splitlines() if line.strip()]


def fire_seconds(records: Path, task: str) -> list[int]:
    return sorted(r["scheduled"] // 1000 for r in runs(records) if r["task"] == task)


def assert_once(records: Path, jobs: list[Job], task: str, *, lost_ok: set[int]) -> list[int]:
    """Each fire of ``task`` claimed once (one job), run once; a second in
    ``lost_ok`` (its job held by a killed process, re-run only after its
    lease) may be missing. Returns the fire seconds claimed."""
    claims = fire_seconds_of(jobs, task)
    assert claims and set(claims.values()) == {1}, claims
    ran = Counter(fire_seconds(records, task))
    retried = {job.payload["scheduledTime"] // 1000 for job in jobs
               if job.task == task and job.attempts > 1}
    doubled = {second for second, count in ran.items() if count > 1} - retried
    assert not doubled, doubled
    assert set(ran) <= set(claims)
    missing = set(claims) - set(ran) - pending_tail(jobs, task, set(ran))
    assert missing <= lost_ok, (missing, lost_ok, [
        (job.status, job.attempts, job.run_at, job.created_at, job.updated_at)
        for job in jobs if job.task == task and job.payload["scheduledTime"] // 1000 in missing])
    return sorted(claims)


def pending_tail(jobs: list[Job], task: str, ran: set[int]) -> set[int]:
    """Fire seconds of jobs claimed as the servers stopped: pending, newer
    than every run, they wait for the next worker."""
    return {job.payload["scheduledTime"] // 1000 for job in jobs
            if job.task == task and job.status == "pending"
            and job.payload["scheduledTime"] // 1000 > max(ran, default=0)}


def contiguous(seconds: list[int]) -> list[tuple[int, int]]:
    """Runs of consecutive seconds as (first, last) pairs."""
    spans: list[tuple[int, int]] = []
    for second in seconds:
        if spans and second == spans[-1][1] + 1:
            spans[-1] = (spans[-1][0], second)
        else:
            spans.append((second, second))
    return spans


def held_by_killed(jobs: list[Job], pid: int) -> set[int]:
    return {job.payload["scheduledTime"] // 1000 for job in jobs
            if job.status in ("running", "pending")
            and (job.locked_by or "").split(":")[1:2] == [str(pid)]}


def test_three_hosts_on_postgres_fire_once_through_a_kill_and_a_downtime(
        tmp_path: Path, pg_url: str, hosts_factory: list[Hosts]) -> None:
    """3 processes of one bundle on one Postgres: every second claimed and
    run once; kill -9 of one midway changes nothing; then all stop for 10 s
    and two start again: ``keep`` (backfill 1m) runs each missed second once,
    late; ``tick`` runs none of them."""
    index = build(make_project(tmp_path / "project"), tmp_path / "out")
    records = tmp_path / "records.jsonl"
    hosts = Hosts(index, tmp_path, records, TASKPACK_DATABASE_URL=pg_url)
    hosts_factory.append(hosts)
    first = hosts.start(3)
    wait_for(lambda: len(fire_seconds(records, "tick")) >= 6 or None, 30, "six fires")
    victim = first[0]
    victim.process.kill()
    victim.process.wait(10)
    killed_pid = victim.process.pid
    killed_at = time.time()
    wait_for(lambda: [s for s in fire_seconds(records, "tick") if s > killed_at + 5] or None,
             30, "fires after the kill")
    hosts.stop_all()
    down_at = time.time()
    time.sleep(10)
    up_at = time.time()
    hosts.start(2)
    wait_for(lambda: [s for s in fire_seconds(records, "tick") if s > up_at + 4] or None,
             30, "fires after the restart")
    hosts.stop_all()

    jobs = read_store(pg_url, all_jobs, tmp_path)
    lost_ok = held_by_killed(jobs, killed_pid)
    assert len(lost_ok) <= 2, lost_ok
    ticks = assert_once(records, jobs, "tick", lost_ok=lost_ok)
    keeps = assert_once(records, jobs, "keep", lost_ok=lost_ok)

    # tick: two spans of consecutive seconds (before and after the downtime),
    # none missing inside them, nothing claimed in the gap, no run late.
    spans = contiguous(ticks)
    assert len(spans) == 2, (spans, hosts.logs())
    (_, before_end), (after_start, _) = spans
    assert before_end <= down_at + 1 and after_start >= up_at - 2, (spans, down_at, up_at)
    assert after_start - before_end >= 8
    late = [r for r in runs(records)
            if r["task"] == "tick" and r["at"] - r["scheduled"] / 1000 > LATE]
    assert not late, late
    # keep: one span, every second once, the gap's seconds run late.
    assert contiguous(keeps) == [(ticks[0], keeps[-1])], contiguous(keeps)
    backfilled = [r for r in runs(records)
                  if r["task"] == "keep" and before_end < r["scheduled"] // 1000 < after_start]
    assert len(backfilled) == after_start - before_end - 1 - len(lost_ok & set(range(
        before_end + 1, after_start)))
    assert all(r["at"] >= up_at for r in backfilled)
    # The whole logs: the tail that hosts.logs() keeps for messages may have
    # scrolled past the warning, one line per run follows it.
    assert any("missed" in server.logs() for server in hosts.all), hosts.logs()

    # Runs are recorded in the store with the host that ran them.
    pids = {r["pid"] for r in runs(records)}
    assert len(pids) >= 3, pids


def test_postgres_restart_doubles_nothing_and_outage_fires_follow_backfill(
        tmp_path: Path, hosts_factory: list[Hosts]) -> None:
    """Two hosts on a private PostgreSQL that restarts for ~8 s in the middle:
    no fire claimed twice; ``tick`` runs none of the outage's seconds late,
    ``keep`` (backfill from the config) runs each of them once."""
    index = build(make_project(tmp_path / "project", keep_in_config=True), tmp_path / "out")
    records = tmp_path / "records.jsonl"
    with throwaway_server() as pg:
        hosts = Hosts(index, tmp_path, records, TASKPACK_DATABASE_URL=pg.url)
        hosts_factory.append(hosts)
        hosts.start(2)
        wait_for(lambda: len(fire_seconds(records, "tick")) >= 3 or None, 30, "three fires")
        pg.stop()
        stopped_at = time.time()
        time.sleep(8)
        pg.start()
        started_at = time.time()
        wait_for(lambda: [s for s in fire_seconds(records, "tick") if s > started_at + 3]
                 or None, 60, "fires after the restart")
        wait_for(lambda: all("scheduler: store available again" in s.logs() for s in hosts.all)
                 or None, 30, "every scheduler to find the store back")
        hosts.stop_all()
        jobs = read_store(pg.url, all_jobs, tmp_path)
    ticks = assert_once(records, jobs, "tick", lost_ok=set())
    keeps = assert_once(records, jobs, "keep", lost_ok=set())
    outage = set(range(int(stopped_at) + 1, int(started_at)))
    # A claim under way when the database comes back may succeed: the edge second.
    assert len(outage & set(ticks)) <= 1, sorted(outage & set(ticks))
    assert outage <= set(keeps), sorted(outage - set(keeps))
    assert contiguous(keeps) == [(keeps[0], keeps[-1])]
    late = [r for r in runs(records)
            if r["task"] == "tick" and r["at"] - r["scheduled"] / 1000 > LATE]
    assert not late, late
    for server in hosts.all:  # the scheduler's state changes, logged once each
        logs = server.logs()
        assert logs.count("scheduler: store unavailable") == 1, logs
        assert logs.count("scheduler: store available again") == 1, logs


def test_two_servers_from_one_folder_share_the_embedded_store(
        tmp_path: Path, hosts_factory: list[Hosts]) -> None:
    """Two ``server`` processes started in one folder (the default SQLite
    store under .taskpack/) run each fire once."""
    index = build(make_project(tmp_path / "project"), tmp_path / "out")
    records = tmp_path / "records.jsonl"
    hosts = Hosts(index, tmp_path, records)
    hosts_factory.append(hosts)
    hosts.start(2, folder=tmp_path / "shared")
    # Each fire goes to whichever process claims it first, so which one runs
    # the first few is chance (all five by one of them, 1 time in 16): the
    # fires go on until both have run some.
    wait_for(lambda: (len(fire_seconds(records, "tick")) >= 5
                      and len({r["pid"] for r in runs(records)}) == 2) or None,
             30, "five fires, run by both processes")
    hosts.stop_all()
    jobs = read_store("sqlite:///.taskpack/store.sqlite", all_jobs, tmp_path / "shared")
    ticks = assert_once(records, jobs, "tick", lost_ok=set())
    assert contiguous(ticks) == [(ticks[0], ticks[-1])]
    pids = {r["pid"] for r in runs(records)}
    # `taskpack runs` shows which process ran each run.
    taskpack = Path(sys.executable).with_name("taskpack")
    table = subprocess.run([str(taskpack), "runs", "tick", "--limit", "1000", "--db",
                            str(tmp_path / "shared" / ".taskpack" / "store.sqlite")],
                           capture_output=True, text=True, check=True).stdout.splitlines()
    column = table[0].index("HOST")
    shown = {line[column:].split()[0] for line in table[1:]}
    assert shown == {f"{socket.gethostname()}:{pid}" for pid in pids}, table


def test_cluster_rebuilt_in_place_with_a_second_instance_fires_once(
        tmp_path: Path, hosts_factory: list[Hosts]) -> None:
    """``server_cluster`` (2 workers) running; the bundle is rebuilt in place
    and a second instance starts from it in the same folder: each fire still
    runs once, and the first instance keeps scheduling."""
    project = make_project(tmp_path / "project")
    index = build(project, tmp_path / "out", "server_cluster")
    records = tmp_path / "records.jsonl"
    hosts = Hosts(index, tmp_path, records, WORKERS="2")
    hosts_factory.append(hosts)
    first = hosts.start(1, folder=tmp_path / "shared")[0]
    wait_for(lambda: len(fire_seconds(records, "tick")) >= 2 or None, 30, "two fires")
    build(project, tmp_path / "out", "server_cluster")
    rebuilt_at = time.time()
    hosts.start(1, folder=tmp_path / "shared")
    wait_for(lambda: [s for s in fire_seconds(records, "tick") if s > rebuilt_at + 4] or None,
             30, "fires after the rebuild")
    os.kill(first.process.pid, signal.SIGTERM)  # the first instance alone: still fires
    assert first.process.wait(30) == 0
    hosts.stop_all()
    jobs = read_store("sqlite:///.taskpack/store.sqlite", all_jobs, tmp_path / "shared")
    ticks = assert_once(records, jobs, "tick", lost_ok=set())
    assert contiguous(ticks) == [(ticks[0], ticks[-1])]


def test_a_server_keeps_firing_after_its_clock_steps_back_an_hour(
        tmp_path: Path, hosts_factory: list[Hosts]) -> None:
    """Issue 11 item 12, in a real process: its clock starts an hour ahead
    (the test hook $TASKPACK_TEST_CLOCK_FILE) and is then corrected; fires
    go on at the corrected time within seconds, not an hour later."""
    index = build(make_project(tmp_path / "project"), tmp_path / "out")
    records = tmp_path / "records.jsonl"
    offset = tmp_path / "clock-offset"
    offset.write_text("3600")
    hosts = Hosts(index, tmp_path, records, TASKPACK_TEST_CLOCK_FILE=str(offset))
    hosts_factory.append(hosts)
    hosts.start(1)
    ahead = wait_for(lambda: fire_seconds(records, "tick") or None, 30, "a fire")
    assert ahead[0] > time.time() + 3000
    offset.write_text("0")
    stepped = time.time()
    wait_for(lambda: [s for s in fire_seconds(records, "tick") if abs(s - stepped) < 60]
             or None, 15, "a fire at the corrected time")
    hosts.stop_all()
    assert "stepped back" in hosts.logs()


@pytest.mark.skipif(not netns.available(), reason="needs root and iproute2 (ip netns)")
def test_three_hosts_in_network_namespaces(tmp_path: Path, hosts_factory: list[Hosts]) -> None:
    """The three hosts of the test above, each in a network namespace of its
    own with a copy of the bundle in a folder of its own, reaching a private
    PostgreSQL over a veth pair (its address exists only on these veths):
    nothing depends on a shared loopback or folder. Runs are read from the
    store, where every host records them with its name."""
    build(make_project(tmp_path / "project"), tmp_path / "out")
    with netns.hosts_in_namespaces(3) as nets, throwaway_server() as pg:
        with (pg.data / "pg_hba.conf").open("a") as hba:
            hba.write("host all all 10.213.0.0/16 trust\n")
        pg.listen = ",".join(net.gateway for net in nets)
        pg.restart()
        hosts = Hosts(tmp_path / "unused", tmp_path, tmp_path / "records.jsonl")
        hosts_factory.append(hosts)
        servers = []
        for number, net in enumerate(nets):
            folder = tmp_path / f"host{number}"
            shutil.copytree(tmp_path / "out", folder / "out")
            url = f"postgresql://postgres@{net.gateway}:{pg.port}/postgres"
            port = free_port()
            server = ServerProcess(
                net.argv([sys.executable, str(folder / "out" / "server" / "index.py")]),
                {"PORT": str(port), "HOST": "0.0.0.0", "TASKPACK_DATABASE_URL": url,
                 RECORD_ENV: str(folder / "records.jsonl")},
                tmp_path / f"host{number}.log", cwd=folder)
            server.url = f"http://{net.address}:{port}"
            hosts.all.append(server)
            servers.append(server)
        for server in servers:
            server.wait_healthy(60)
        url = f"postgresql://postgres@{nets[0].gateway}:{pg.port}/postgres"

        def fired() -> list[int]:
            return sorted(job.payload["scheduledTime"] // 1000
                          for job in read_store(url, all_jobs, tmp_path) if job.task == "tick")

        wait_for(lambda: len({r.host for r in read_store(url, all_runs, tmp_path)}) == 3
                 or None, 60, "a run on each host")
        servers[0].process.kill()
        servers[0].process.wait(10)
        killed_at = time.time()
        wait_for(lambda: [s for s in fired() if s > killed_at + 3] or None, 30,
                 "fires after the kill")
        hosts.stop_all()
        jobs = read_store(url, all_jobs, tmp_path)
        records = read_store(url, all_runs, tmp_path)
    claims = fire_seconds_of(jobs, "tick")
    assert set(claims.values()) == {1}, claims
    assert contiguous(sorted(claims)) == [(min(claims), max(claims))]
    lost_ok = held_by_killed(jobs, servers[0].process.pid)
    ran = Counter(r.payload["scheduledTime"] // 1000 for r in records if r.task == "tick")
    assert set(ran.values()) == {1}, ran
    assert set(claims) - set(ran) - pending_tail(jobs, "tick", set(ran)) <= lost_ok
    assert len({r.host for r in records}) == 3, {r.host for r in records}
