"""The run pages stay fast with 100,000 runs in the store: keyset cursors,
never an offset or a load of everything. The fetch times are measured and
written to ``.cache/dashboard-scale.json`` (and printed); the only timing
assertion is a ceiling far above them, which catches a page that reads the
whole history (seconds) without flaking on a loaded machine."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from taskpack import Registry, define_task
from taskpack.http import TaskApi, asgi_app, loopback_only
from taskpack.store import RunRecord, store_for
from taskpack.web.app import Dashboard
from tests.helpers import REPO

pytestmark = pytest.mark.anyio

RUNS = 100_000
TASKS = 10
CHUNK = 5_000
CEILING = 2.0
"""Seconds; a page takes milliseconds."""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@define_task
def noop(event: Any) -> Any:
    return None


def record(i: int) -> RunRecord:
    outcome = "timeout" if i % 997 == 0 else "error" if i % 10 == 0 else "ok"
    trigger = "schedule:* * * * *" if i % 3 == 0 else "http"
    return RunRecord(f"{i:032x}", f"task{i % TASKS}", trigger, "0" * 16, 1e9 + i, 1e9 + i + 0.01,
                     10.0, 1, outcome, "ValueError: boom" if outcome == "error" else None,
                     host="bench:1", payload={"i": i}, result={"ok": i})


async def test_pages_with_100k_runs(tmp_path: Path) -> None:
    store = store_for("sqlite:///runs.sqlite", root=tmp_path, history_limit=RUNS)
    await store.open()
    try:
        for start in range(0, RUNS, CHUNK):
            for i in range(start, start + CHUNK):
                store.record_run(record(i))
            assert await store.flush(120)
        registry = Registry.of({f"task{n}": noop for n in range(TASKS)}, root=tmp_path,
                               store=store)
        api = TaskApi(registry, policy=loopback_only())
        app = asgi_app(api, fallback=Dashboard(api))
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                   base_url="http://127.0.0.1")
        timings: dict[str, float] = {}

        async def fetch(name: str, **params: str) -> dict[str, Any]:
            started = time.perf_counter()
            response = await client.get("/_taskpack/api/runs", params=params)
            timings[name] = round((time.perf_counter() - started) * 1000, 2)
            assert response.status_code == 200, response.text
            data: dict[str, Any] = response.json()
            return data

        first = await fetch("first page", limit="50")
        assert [r["id"] for r in first["runs"]] == [f"{i:032x}" for i in
                                                    range(RUNS - 1, RUNS - 51, -1)]
        page = first
        for hop in range(1, 11):
            page = await fetch(f"page {hop + 1}", limit="50", cursor=page["next"])
        assert page["runs"][0]["id"] == f"{RUNS - 1 - 500:032x}"
        rare = await fetch("outcome=timeout", outcome="timeout", limit="50")
        assert len(rare["runs"]) == 50 and {r["outcome"] for r in rare["runs"]} == {"timeout"}
        task = await fetch("task+outcome+trigger", task="task0", outcome="error",
                           trigger="schedule", limit="50")
        assert task["runs"] and all(r["task"] == "task0" and r["trigger"].startswith("schedule:")
                                    for r in task["runs"])
        started = time.perf_counter()
        listing = await client.get("/_taskpack/api/tasks")
        timings["tasks view"] = round((time.perf_counter() - started) * 1000, 2)
        assert listing.status_code == 200
        assert len(listing.json()["tasks"][0]["recent"]) == 20
        out = REPO / ".cache" / "dashboard-scale.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps({"runs": RUNS, "ms": timings}, indent=2))
        print(f"\n{RUNS} runs, fetch times (ms): {timings}")
        assert max(timings.values()) < CEILING * 1000, timings
    finally:
        await store.close()
