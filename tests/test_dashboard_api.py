"""The dashboard's JSON endpoints (``/_taskpack/api/…``): shapes, filters,
pagination, access. In-process over ASGI; the browser tests drive the same
endpoints through real servers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from taskpack import Registry, define_task
from taskpack.http import TaskApi, asgi_app, bearer_token, loopback_only
from taskpack.web.app import Dashboard

LOOPBACK = "http://127.0.0.1"

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@define_task(description="Echo the payload")
async def echo(event: Any) -> Any:
    return {"echo": event.payload}


@define_task(description="Always fails")
def broken(event: Any) -> Any:
    raise RuntimeError("it broke")


def only_names(payload: Any) -> Any:
    if not isinstance(payload.get("name"), str):
        raise ValueError("name: expected a string")
    return payload


checked = define_task(payload_schema=only_names, retries=2, timeout=5)(
    lambda event: event.payload)


def make_dashboard(tmp_path: Path, *, token: str | None = None) -> tuple[Dashboard, Any]:
    registry = Registry.of({"echo": echo, "broken": broken, "checked": checked}, root=tmp_path)
    policy = bearer_token(token) if token else loopback_only()
    api = TaskApi(registry, policy=policy, dev=token is None)
    schedules = [{"cron": "0 6 * * MON-FRI", "tasks": ["echo"], "description": "At 06:00",
                  "deployed": [{"platform": "Vercel Cron Jobs", "presets": ["vercel"],
                                "ok": True, "cron": "0 6 * * 1-5"}]}]
    dashboard = Dashboard(api, schedules=lambda: schedules, page_policy=None if token else policy,
                          dev=token is None, poll_interval=0.2)
    return dashboard, asgi_app(api, fallback=dashboard)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[httpx.AsyncClient]:
    _, app = make_dashboard(tmp_path)
    yield httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=LOOPBACK)


async def run(client: httpx.AsyncClient, task: str, payload: Any) -> httpx.Response:
    return await client.post(f"/_taskpack/api/tasks/{task}/run", json={"payload": payload})


async def test_page_and_static_files(client: httpx.AsyncClient) -> None:
    page = await client.get("/_taskpack/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert '<script src="static/app.js"' in page.text
    assert "set-cookie" not in page.headers
    script = await client.get("/_taskpack/static/app.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert (await client.get("/_taskpack/static/style.css")).status_code == 200
    redirect = await client.get("/_taskpack")
    assert (redirect.status_code, redirect.headers["location"]) == (308, "/_taskpack/")
    for missing in ("/_taskpack/static/../app.py", "/_taskpack/static/nope.js",
                    "/_taskpack/index.html", "/_taskpack/api/nope"):
        assert (await client.get(missing)).status_code == 404, missing
    assert (await client.post("/_taskpack/")).status_code == 405


async def test_tasks_listing_shape(client: httpx.AsyncClient) -> None:
    await run(client, "echo", {"n": 1})
    data = (await client.get("/_taskpack/api/tasks")).json()
    assert data["timezone"] == "UTC"
    tasks = {task["name"]: task for task in data["tasks"]}
    assert list(tasks) == ["broken", "checked", "echo"]
    echo_task = tasks["echo"]
    assert echo_task["description"] == "Echo the payload"
    assert echo_task["schedules"] == ["0 6 * * MON-FRI"]
    assert echo_task["lastRun"]["outcome"] == "ok"
    assert [r["outcome"] for r in echo_task["recent"]] == ["ok"]
    assert tasks["checked"]["options"] == {
        "retries": 2, "timeout": 5, "concurrency": "dedupe", "max_concurrency": None,
        "payload_schema": "only_names", "json_schema": None}
    assert tasks["broken"]["lastRun"] is None
    [schedule] = data["schedules"]
    assert schedule["deployed"][0]["cron"] == "0 6 * * 1-5"
    assert len(schedule["next"]) == 5
    assert all("T06:00:00+00:00" in fire for fire in schedule["next"])


async def test_run_endpoint_results_and_errors(client: httpx.AsyncClient) -> None:
    ok = await run(client, "echo", {"a": [1, 2]})
    assert ok.status_code == 200
    body = ok.json()
    assert body["ok"] and body["result"] == {"echo": {"a": [1, 2]}}
    assert body["run"]["task"] == "echo" and body["run"]["trigger"] == "http"

    failed = await run(client, "broken", {})
    assert failed.status_code == 500
    error = failed.json()["error"]
    assert error["message"] == "it broke"
    assert 'raise RuntimeError("it broke")' in error["traceback"]
    assert failed.json()["run"]["outcome"] == "error"

    refused = await run(client, "checked", {"name": 3})
    assert refused.status_code == 422
    assert refused.json()["error"]["errors"] == [
        {"field": None, "message": "name: expected a string", "type": "value_error"}]

    assert (await run(client, "nope", {})).status_code == 404
    bad = await client.post("/_taskpack/api/tasks/echo/run", content=b"[1]",
                            headers={"content-type": "application/json"})
    assert bad.status_code == 400
    form = await client.post("/_taskpack/api/tasks/echo/run", content=b'{"payload": {}}',
                             headers={"content-type": "text/plain"})
    assert form.status_code == 415  # what a cross-site form could send
    assert (await client.get("/_taskpack/api/tasks/echo/run")).status_code == 405


async def test_runs_filters_detail_and_pages(client: httpx.AsyncClient) -> None:
    for n in range(7):
        await run(client, "echo", {"n": n})
    await run(client, "broken", {})
    listing = (await client.get("/_taskpack/api/runs")).json()
    assert [r["task"] for r in listing["runs"]][:2] == ["broken", "echo"]
    assert listing["next"] is None
    errors = (await client.get("/_taskpack/api/runs", params={"outcome": "error"})).json()
    assert [r["task"] for r in errors["runs"]] == ["broken"]
    http = (await client.get("/_taskpack/api/runs", params={"trigger": "http",
                                                            "task": "echo"})).json()
    assert len(http["runs"]) == 7
    assert (await client.get("/_taskpack/api/runs",
                             params={"trigger": "schedule"})).json()["runs"] == []

    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "3", "task": "echo", **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/_taskpack/api/runs", params=params)).json()
        seen += [r["id"] for r in page["runs"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 7

    detail = (await client.get(f"/_taskpack/api/runs/{seen[0]}")).json()["run"]
    assert detail["id"] == seen[0] and detail["task"] == "echo"
    assert (await client.get("/_taskpack/api/runs/nope")).status_code == 404

    for bad in ({"outcome": "fine"}, {"trigger": "cron"}, {"limit": "0"}, {"limit": "x"},
                {"limit": "201"}):
        response = await client.get("/_taskpack/api/runs", params=bad)
        assert response.status_code == 400, bad
        assert response.json()["error"] is True


async def test_info(client: httpx.AsyncClient) -> None:
    info = (await client.get("/_taskpack/api/info")).json()
    assert info["dev"] is True and info["timezone"] == "UTC"
    counts = await client.get("/_taskpack/api/job-counts")  # every registry has a store
    assert (counts.status_code, counts.json()["counts"]["pending"]) == (200, 0)


async def test_dev_policy_refuses_other_hosts_and_origins(tmp_path: Path) -> None:
    _, app = make_dashboard(tmp_path)
    transport = httpx.ASGITransport(app=app, client=("10.0.0.5", 4000))
    async with httpx.AsyncClient(transport=transport, base_url=LOOPBACK) as remote:
        assert (await remote.get("/_taskpack/")).status_code == 403
        assert (await remote.get("/_taskpack/api/tasks")).status_code == 403
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url=LOOPBACK) as local:
        cross = await local.post("/_taskpack/api/tasks/echo/run", json={"payload": {}},
                                 headers={"origin": "https://evil.example"})
        assert cross.status_code == 403
        rebound = await local.get("/_taskpack/api/tasks", headers={"host": "evil.example"})
        assert rebound.status_code == 403
        for site in ("cross-site", "same-site"):
            framed = await local.get("/_taskpack/", headers={"sec-fetch-site": site})
            assert framed.status_code == 403, site
        typed = await local.get("/_taskpack/", headers={"sec-fetch-site": "none",
                                                       "sec-fetch-mode": "navigate"})
        assert typed.status_code == 200


async def test_token_policy(tmp_path: Path) -> None:
    _, app = make_dashboard(tmp_path, token="s3cret")
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://tasks.example") as c:
        assert (await c.get("/_taskpack/")).status_code == 200  # the page holds no data
        assert (await c.get("/_taskpack/api/tasks")).status_code == 401
        wrong = await c.get("/_taskpack/api/info", headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert (await c.get("/_taskpack/api/events")).status_code == 401
        right = await c.get("/_taskpack/api/info", headers={"authorization": "Bearer s3cret"})
        assert right.status_code == 200 and right.json()["dev"] is False
        failed = await c.post("/_taskpack/api/tasks/broken/run", json={"payload": {}},
                              headers={"authorization": "Bearer s3cret"})
        assert "traceback" not in failed.json()["error"]  # tracebacks stay in dev


async def read_events(app: Any, count: int, during: Any) -> list[tuple[str, Any]]:
    """The first ``count`` events of the stream while ``during()`` runs."""
    received: list[tuple[str, Any]] = []
    done = asyncio.Event()
    body = bytearray()

    async def receive() -> dict[str, Any]:
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] != "http.response.body":
            return
        body.extend(message.get("body", b""))
        while b"\n\n" in body:
            block, _, rest = bytes(body).partition(b"\n\n")
            body[:] = rest
            lines = dict(line.split(": ", 1) for line in block.decode().splitlines()
                         if not line.startswith(":"))
            if "event" in lines:
                received.append((lines["event"], json.loads(lines["data"])))
        if len(received) >= count:
            done.set()

    scope = {"type": "http", "method": "GET", "path": "/_taskpack/api/events", "root_path": "",
             "query_string": b"", "headers": [(b"host", b"127.0.0.1")],
             "client": ("127.0.0.1", 5000)}
    stream = asyncio.create_task(app(scope, receive, send))
    await asyncio.sleep(0.05)
    await during()
    await asyncio.wait_for(done.wait(), 10)
    await asyncio.wait_for(stream, 10)
    return received


async def test_event_stream_sends_new_runs_once(tmp_path: Path) -> None:
    _, app = make_dashboard(tmp_path)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=LOOPBACK)
    await run(client, "echo", {"before": True})  # already there: not sent

    async def two_runs() -> None:
        await run(client, "echo", {"n": 1})
        await run(client, "broken", {})

    events = await read_events(app, 3, two_runs)
    assert events[0] == ("hello", {"poll": 0.2})
    assert [(kind, run["task"]) for kind, run in events[1:]] == [("run", "echo"),
                                                                  ("run", "broken")]


async def test_event_stream_polls_runs_of_other_processes(tmp_path: Path) -> None:
    dashboard, app = make_dashboard(tmp_path)
    store = dashboard.registry.store

    async def elsewhere() -> None:  # a run recorded into the store, no event here
        from taskpack.store import RunRecord

        store.record_run(RunRecord("f" * 32, "echo", "schedule:* * * * *", "0" * 16, 1.0, 2.0,
                                 1000.0, 1, "ok"))

    events = await read_events(app, 2, elsewhere)
    assert events[1][0] == "run" and events[1][1]["id"] == "f" * 32


async def test_closing_ends_streams(tmp_path: Path) -> None:
    dashboard, app = make_dashboard(tmp_path)

    async def close() -> None:
        dashboard.close()

    events = await read_events(app, 1, close)
    assert events == [("hello", {"poll": 0.2})]



async def test_event_stream_sends_job_changes(tmp_path: Path) -> None:
    from taskpack import events
    from taskpack.store import Job

    _, app = make_dashboard(tmp_path)
    job = Job(id="j1", task="echo", payload={"n": 1}, status="running", run_at=1.0,
              created_at=1.0, updated_at=2.0, attempts=1, max_attempts=3)

    async def change() -> None:
        events.job_changed(job)

    events_seen = await read_events(app, 2, change)
    assert events_seen[1] == ("job", job.to_dict())


async def test_a_store_that_is_down_is_a_json_503(tmp_path: Path) -> None:
    from taskpack.store import StoreUnavailable
    from taskpack.store.memory import MemoryStore

    class DownStore(MemoryStore):  # as a Postgres store answers while the server is down
        async def list_runs(self, **kwargs: Any) -> Any:
            raise StoreUnavailable("connection refused")

    registry = Registry.of({"echo": echo}, root=tmp_path,
                           store=DownStore("memory://", root=tmp_path))
    api = TaskApi(registry, policy=loopback_only(), dev=True)
    dashboard = Dashboard(api, poll_interval=0.2)
    app = asgi_app(api, fallback=dashboard)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url=LOOPBACK) as client:
        response = await client.get("/_taskpack/api/runs")
        assert response.status_code == 503
        assert response.json()["message"] == "the store is unavailable: connection refused"

    async def run_one() -> None:  # the stream stays up and in-process runs still arrive
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url=LOOPBACK) as client:
            ran = await run(client, "echo", {"n": 1})
            assert ran.status_code == 200  # it ran: the missing run record is no error
            assert ran.json()["result"] == {"echo": {"n": 1}} and ran.json()["run"] is None

    events_seen = await read_events(app, 2, run_one)
    assert events_seen[1][0] == "run"


async def test_mounted_below_a_prefix(tmp_path: Path) -> None:
    """Under a host app's mount (``root_path``) the page and its relative
    calls keep working; the bare path redirects inside the mount."""
    from starlette.applications import Starlette
    from starlette.routing import Mount

    _, app = make_dashboard(tmp_path)
    host = Starlette(routes=[Mount("/tasks", app=app)])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=host),
                                 base_url=LOOPBACK) as client:
        bare = await client.get("/tasks/_taskpack")
        assert (bare.status_code, bare.headers["location"]) == (308, "/tasks/_taskpack/")
        assert (await client.get("/tasks/_taskpack/")).status_code == 200
        assert (await client.get("/tasks/_taskpack/static/app.js")).status_code == 200
        tasks = await client.get("/tasks/_taskpack/api/tasks")
        assert tasks.status_code == 200 and tasks.json()["tasks"]


def test_fire_times_are_in_the_project_zone() -> None:
    from datetime import UTC, datetime

    from taskpack.web.api import schedule_view

    now = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)  # Berlin goes to summer time on the 29th
    view = schedule_view({"cron": "30 2 * * *", "tasks": ["x"]}, "Europe/Berlin", now)
    # 02:30 does not exist that night: shown when the scheduler fires it (docs/cron.md)
    assert view["next"][:3] == ["2026-03-29T03:00:00+02:00",
                                "2026-03-30T02:30:00+02:00", "2026-03-31T02:30:00+02:00"]
    assert view["timezone"] == "Europe/Berlin" and view["deployed"] is None


async def test_a_task_that_cannot_load_shows_why(tmp_path: Path) -> None:
    from taskpack.registry import TaskEntry

    (tmp_path / "broken_import.py").write_text("raise ImportError('no such helper')\n")
    registry = Registry(tmp_path, {"todo": TaskEntry("todo", None, "Not written yet"),
                                   "bad": TaskEntry("bad", "broken_import.py")})
    api = TaskApi(registry, policy=loopback_only(), dev=True)
    app = asgi_app(api, fallback=Dashboard(api))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url=LOOPBACK) as client:
        tasks = {t["name"]: t for t in (await client.get("/_taskpack/api/tasks")).json()["tasks"]}
    assert tasks["todo"]["options"] is None and "todo" in tasks["todo"]["loadError"]
    assert "no such helper" in tasks["bad"]["loadError"]
