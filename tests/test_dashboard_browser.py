"""The dashboard in a real browser: Playwright driving Debian's Chromium
(``scripts/install_chromium.sh``, run by ``make test``, installs it).

Against ``taskpack dev`` on a copy of examples/basic (plus a failing task
and one with a pydantic payload schema), and against a built server with
``[server] dashboard = true``. Screenshots of each view are written to
``.cache/screenshots/`` (ignored by git) for a person to look at.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser import chromium
from tests.helpers import REPO, copy_example, write_files
from tests.servers import ServerProcess, free_port, wait_for
from tests.test_dev_server import Dev

playwright_api = pytest.importorskip("playwright.sync_api")
Page = playwright_api.Page
expect = playwright_api.expect

SHOTS = REPO / ".cache" / "screenshots"
TOKEN = "dashboard-token"

EXTRA = {
    "tasks/fail.py": '''
        """Fails on purpose."""
        from taskpack import define_task


        def explode(payload):
            raise ValueError(f"cannot handle {payload.get('item')!r}")


        @define_task
        def run(event):
            return explode(event.payload)
        ''',
    "tasks/greet.py": '''
        """Greet someone a number of times."""
        from pydantic import BaseModel

        from taskpack import define_task


        class Greeting(BaseModel):
            name: str
            times: int = 1


        @define_task(payload_schema=Greeting, retries=2, timeout=10)
        def run(event):
            return {"greeting": " ".join([f"hello {event.payload.name}"] * event.payload.times)}
        ''',
}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Any) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    yield page
    context.close()


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dev]:
    root = copy_example(tmp_path_factory.mktemp("dash") / "basic")
    write_files(root, EXTRA)
    server = Dev(root)
    yield server
    assert server.stop(signal.SIGINT) == 0, server.output()


def test_task_list_renders_the_example(dev: Dev, page: Page) -> None:
    page.goto(f"{dev.url}/_taskpack/")
    for name in ("cms:update", "db:migrate", "echo:payload", "report:daily", "greet"):
        expect(page.get_by_role("heading", name=name, exact=True)).to_be_visible()
    card = page.locator("section.card", has=page.get_by_role("heading", name="report:daily"))
    expect(card).to_contain_text("Build the daily report")
    expect(card).to_contain_text("At 06:00 on Monday through Friday")
    vercel = card.locator("li", has=page.locator("strong", has_text=re.compile("^vercel$")))
    expect(vercel.locator("code")).to_have_text("0 6 * * 1-5")  # Vercel's digits
    expect(card).to_contain_text("refused: Cloudflare Pages has no cron triggers")
    greet = page.locator("section.card", has=page.get_by_role("heading", name="greet"))
    expect(greet).to_contain_text("Retries2")
    expect(greet).to_contain_text("Greeting")
    assert page.locator("nav a[aria-current=page]").inner_text() == "Tasks"
    shot(page, "tasks")
    page.set_viewport_size({"width": 390, "height": 800})
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways on a phone ({width}px)"
    shot(page, "tasks-phone")


def test_run_with_payload_shows_result_and_run_arrives_live(dev: Dev, browser: Any,
                                                            page: Page) -> None:
    runs = browser.new_page()
    runs.goto(f"{dev.url}/_taskpack/#/runs?task=echo%3Apayload")
    expect(runs.locator("#live")).to_have_text("Live")
    page.goto(f"{dev.url}/_taskpack/#/run/echo%3Apayload")
    editor = page.get_by_label("Payload (JSON object)")
    editor.fill('{"message": "hello from the browser"')
    expect(page.locator("#payload-state")).to_contain_text("Invalid JSON")
    expect(editor).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_role("button", name="Run echo:payload")).to_be_disabled()
    editor.fill('{"message": "hello from the browser"}')
    expect(page.locator("#payload-state")).to_have_text("Valid JSON")
    page.get_by_role("button", name="Run echo:payload").click()
    expect(page.locator("pre.result")).to_contain_text("hello from the browser")
    shot(page, "run-form")
    run_id = page.get_by_role("link", name="Run details").get_attribute("href")
    assert run_id is not None
    row = runs.locator(f"tr[data-run='{run_id.rsplit('/', 1)[1]}']")
    expect(row).to_be_visible(timeout=2000)  # live, no reload
    expect(row).to_contain_text("http")
    shot(runs, "runs")
    runs.close()


def test_keyboard_reaches_everything_in_order(dev: Dev, page: Page) -> None:
    page.goto(f"{dev.url}/_taskpack/#/run/echo%3Apayload")
    expect(page.get_by_label("Payload (JSON object)")).to_be_focused()
    page.keyboard.press("Shift+Tab")  # back up to the start of the page
    for _ in range(10):
        if page.evaluate("document.activeElement.textContent") == "Skip to content":
            break
        page.keyboard.press("Shift+Tab")
    order = [page.evaluate("document.activeElement.textContent")]
    for _ in range(5):
        page.keyboard.press("Tab")
        order.append(page.evaluate("(e => e.id ? '#' + e.id : e.textContent.trim())"
                                   "(document.activeElement)"))
    assert order == ["Skip to content", "Tasks", "Runs", "Jobs", "← Tasks", "#payload"]
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.type('{"via": "keyboard"}')
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.locator("pre.result")).to_contain_text("keyboard")


def test_runs_of_another_process_arrive_live(dev: Dev, page: Page) -> None:
    page.goto(f"{dev.url}/_taskpack/#/runs?trigger=manual")
    expect(page.locator("#live")).to_have_text("Live")
    taskpack = Path(sys.executable).with_name("taskpack")
    result = subprocess.run([str(taskpack), "task", "run", "echo:payload", "--local", "--root",
                             str(dev.root), "--payload", '{"from": "cli"}'],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    row = page.locator("#runs-body tr", has_text="echo:payload")
    expect(row.first).to_be_visible(timeout=5000)  # the stream polls the shared store
    expect(row.first).to_contain_text("manual")


def test_failing_task_shows_error_and_traceback(dev: Dev, page: Page) -> None:
    page.goto(f"{dev.url}/_taskpack/#/run/fail")
    page.get_by_label("Payload (JSON object)").fill('{"item": "widget"}')
    page.get_by_role("button", name="Run fail").click()
    expect(page.get_by_role("alert")).to_have_text("cannot handle 'widget'")
    trace = page.locator("pre.traceback")
    expect(trace).to_contain_text("ValueError: cannot handle 'widget'")
    expect(trace).to_contain_text("in explode")
    shot(page, "run-error")
    page.get_by_role("link", name="Run details").click()
    expect(page.get_by_role("heading", name="Run of fail")).to_be_visible()
    facts = page.locator("dl.facts")
    expect(facts).to_contain_text("✗ error")
    expect(facts).to_contain_text(f"{socket.gethostname()}:{dev.proc.pid}")  # the host
    expect(page.locator("h3:has-text('Payload') + pre")).to_contain_text('"item": "widget"')
    expect(page.locator("h3:has-text('Error') + pre")).to_have_text(
        "ValueError: cannot handle 'widget'")
    expect(page.locator("h3:has-text('Traceback') + pre")).to_contain_text("in explode")
    shot(page, "run-detail")
    page.get_by_role("link", name="Run fail again with this payload").click()
    expect(page.get_by_label("Payload (JSON object)")).to_have_value('{\n  "item": "widget"\n}')


def test_schema_refusal_shows_field_errors(dev: Dev, page: Page) -> None:
    page.goto(f"{dev.url}/_taskpack/#/run/greet")
    editor = page.get_by_label("Payload (JSON object)")
    expect(editor).to_have_value('{\n  "name": ""\n}')  # required fields prefilled
    editor.fill('{"times": "many"}')
    page.get_by_role("button", name="Run greet").click()
    name = page.locator(".field[data-field=name]")
    times = page.locator(".field[data-field=times]")
    expect(name).to_have_class("field bad")
    expect(name.locator(".problem")).to_contain_text("name: Field required")
    expect(times.locator(".problem")).to_contain_text("times: Input should be a valid integer")
    expect(page.get_by_role("alert")).to_contain_text("invalid payload")
    shot(page, "schema-refusal")


def test_sparkline_and_runs_view_after_runs(dev: Dev, page: Page) -> None:
    for n in range(6):
        httpx.post(f"{dev.url}/_nitro/tasks/echo:payload", json={"payload": {"n": n}})
    httpx.post(f"{dev.url}/_nitro/tasks/fail", json={"payload": {"item": "gear"}})
    page.goto(f"{dev.url}/_taskpack/")
    echo = page.locator("section.card", has=page.get_by_role("heading", name="echo:payload"))
    chart = echo.get_by_role("img")
    expect(chart).to_be_visible()
    before = int(chart.get_attribute("aria-label").split()[1])  # type: ignore[union-attr]
    httpx.post(f"{dev.url}/_nitro/tasks/echo:payload", json={"payload": {"n": "live"}})
    expect(chart).not_to_have_attribute("aria-label", re.compile(rf"^Last {before} runs"))
    expect(chart).to_have_attribute("aria-label", re.compile(r"^Last ([6-9]|1\d) runs: \d+ ok$"))
    assert 6 <= echo.locator("svg rect").count() <= 20
    fail = page.locator("section.card", has=page.get_by_role("heading", name="fail"))
    expect(fail.get_by_role("img")).to_have_attribute("aria-label",
                                                      re.compile(r"^Last \d runs: \d error$"))
    expect(fail).to_contain_text("✗ error")
    shot(page, "tasks-with-runs")
    page.goto(f"{dev.url}/_taskpack/#/runs?outcome=error")
    rows = page.locator("#runs-body tr")
    expect(rows.first).to_contain_text("ValueError: cannot handle 'gear'")
    page.goto(f"{dev.url}/_taskpack/#/runs")
    expect(page.locator("#runs-body tr").first).to_be_visible()
    shot(page, "runs-all")


def test_jobs_view_counts_detail_cancel_retry_live(dev: Dev, page: Page) -> None:
    def enqueue(body: dict[str, Any]) -> str:
        response = httpx.post(f"{dev.url}/_taskpack/jobs", json=body)
        assert response.status_code == 202, response.text
        job_id: str = response.json()["id"]
        return job_id

    def status(job_id: str) -> str:
        value: str = httpx.get(f"{dev.url}/_taskpack/jobs/{job_id}").json()["status"]
        return value

    failed = enqueue({"task": "fail", "payload": {"item": "job"}})
    later = enqueue({"task": "echo:payload", "payload": {"n": "later"}, "delay": 3600})
    wait_for(lambda: status(failed) == "failed" or None, 10, "the failing job to fail")
    page.goto(f"{dev.url}/_taskpack/#/jobs")
    expect(page.locator(f"tr[data-job='{failed}']")).to_contain_text("✗ failed")
    expect(page.locator(f"tr[data-job='{later}']")).to_contain_text("pending")
    pending = page.locator(".count", has=page.locator(".badge.pending"))
    expect(pending.locator("strong")).not_to_have_text("0")
    fresh = enqueue({"task": "echo:payload", "payload": {"n": "live"}})
    expect(page.locator(f"tr[data-job='{fresh}']")).to_be_visible(timeout=3000)  # live
    expect(page.locator(f"tr[data-job='{later}']")).to_contain_text("in 60 min")
    succeeded = page.locator(".count", has=page.locator(".badge.succeeded"))
    expect(succeeded.locator("strong")).not_to_have_text("0")
    shot(page, "jobs")

    page.goto(f"{dev.url}/_taskpack/#/jobs/{failed}")
    expect(page.locator("h3:has-text('Traceback') + pre")).to_contain_text("in explode")
    expect(page.get_by_role("button", name="Cancel")).to_be_disabled()
    expect(page.get_by_role("button", name="Retry")).to_be_enabled()
    shot(page, "job-detail")

    page.goto(f"{dev.url}/_taskpack/#/jobs/{later}")
    expect(page.get_by_role("button", name="Retry")).to_be_disabled()
    page.get_by_role("button", name="Cancel").click()
    expect(page.locator("dl.facts .badge")).to_have_text("⊘ cancelled")
    page.get_by_role("button", name="Retry").click()  # due now: it runs and succeeds
    expect(page.locator("dl.facts .badge")).to_have_text("✓ succeeded", timeout=10000)
    expect(page.locator("h3:has-text('Result') + pre")).to_contain_text("later")


# -- built servers -----------------------------------------------------------------


def built_server(tmp_path: Path, *, dashboard: bool, preset: str = "server",
                 **env: str) -> ServerProcess:
    root = copy_example(tmp_path / "project")
    config = root / "taskpack.toml"
    config.write_text(config.read_text() + f"dashboard = {str(dashboard).lower()}\n")
    taskpack = Path(sys.executable).with_name("taskpack")
    subprocess.run([str(taskpack), "build", "--root", str(root), "--preset", preset,
                    "--output", str(tmp_path / "out")], check=True, capture_output=True)
    port = free_port()
    server = ServerProcess([sys.executable, str(tmp_path / "out" / "server" / "index.py")],
                           {"PORT": str(port), "TASKPACK_TASKS_TOKEN": TOKEN, **env},
                           tmp_path / "server.log", cwd=tmp_path)
    server.wait_healthy()
    return server


def test_built_server_asks_for_the_token(tmp_path: Path, page: Page) -> None:
    server = built_server(tmp_path, dashboard=True)
    try:
        page.goto(f"{server.url}/_taskpack/")
        token = page.get_by_label("Task API token")
        expect(token).to_be_focused()
        shot(page, "sign-in")
        token.fill("wrong-token")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_contain_text("The server refused the token")
        assert page.evaluate("sessionStorage.getItem('taskpack.token')") is None
        page.get_by_label("Task API token").fill(TOKEN)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="echo:payload")).to_be_visible()
        expect(page.locator("#live")).to_have_text("Live")
        assert TOKEN not in page.content()
        assert page.context.cookies() == []
        page.goto(f"{server.url}/_taskpack/#/run/echo%3Apayload")
        page.get_by_role("button", name="Run echo:payload").click()
        expect(page.locator("pre.result")).to_contain_text("result")
        unauthenticated = httpx.get(f"{server.url}/_taskpack/api/tasks")
        assert unauthenticated.status_code == 401
    finally:
        server.stop()


def test_built_server_without_dashboard_is_404(tmp_path: Path) -> None:
    server = built_server(tmp_path, dashboard=False)
    try:
        for path in ("/_taskpack/", "/_taskpack/static/app.js", "/_taskpack/api/tasks"):
            response = httpx.get(server.url + path,
                                 headers={"authorization": f"Bearer {TOKEN}"})
            assert response.status_code == 404, path
        assert not (tmp_path / "out" / "server" / "taskpack" / "web" / "static").exists()
    finally:
        server.stop()


def test_open_event_streams_do_not_hold_shutdown(tmp_path: Path) -> None:
    """An open live stream ends when the server is asked to stop; without
    that, uvicorn would wait the whole grace period (30 s here) for it."""
    root = copy_example(tmp_path / "basic")
    config = root / "taskpack.toml"
    config.write_text(config.read_text() + "shutdown_grace = 30\n")
    server = Dev(root)
    opened = threading.Event()

    def listen() -> None:
        with httpx.stream("GET", f"{server.url}/_taskpack/api/events", timeout=60) as stream:
            for _ in stream.iter_lines():
                opened.set()

    reader = threading.Thread(target=listen, daemon=True)
    reader.start()
    assert opened.wait(10), server.output()
    started = time.monotonic()
    assert server.stop(signal.SIGINT) == 0, server.output()
    assert time.monotonic() - started < 15
    reader.join(10)
    assert not reader.is_alive()


def test_cluster_workers_serve_it_and_stop_with_streams_open(tmp_path: Path) -> None:
    server = built_server(tmp_path, dashboard=True, preset="server_cluster", WORKERS="2")
    auth = {"authorization": f"Bearer {TOKEN}"}
    try:
        assert httpx.get(f"{server.url}/_taskpack/").status_code == 200
        tasks = httpx.get(f"{server.url}/_taskpack/api/tasks", headers=auth).json()
        assert "echo:payload" in {task["name"] for task in tasks["tasks"]}
        opened = threading.Event()

        def listen() -> None:
            with httpx.stream("GET", f"{server.url}/_taskpack/api/events", headers=auth,
                              timeout=60) as stream:
                for _ in stream.iter_lines():
                    opened.set()

        threading.Thread(target=listen, daemon=True).start()
        assert opened.wait(10), server.logs()
        started = time.monotonic()
        assert server.terminate(timeout=25) == 0, server.logs()
        assert time.monotonic() - started < 20  # not the 30 s grace
    finally:
        server.stop()


def test_the_page_reconnects_after_the_server_restarts(tmp_path: Path, page: Page) -> None:
    server = built_server(tmp_path, dashboard=True)
    auth = {"authorization": f"Bearer {TOKEN}"}
    try:
        page.goto(f"{server.url}/_taskpack/")
        page.get_by_label("Task API token").fill(TOKEN)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("link", name="Runs", exact=True).click()
        expect(page.locator("#live")).to_have_text("Live")
        assert server.terminate() == 0
        expect(page.locator("#live")).not_to_have_text("Live")
        # A view drawn while the server is down fails to fetch...
        page.evaluate("location.hash = '#/runs?trigger=http'")
        expect(page.get_by_role("heading", name="Something went wrong")).to_be_visible()
        again = ServerProcess(server.process.args, {"PORT": str(server.port),  # type: ignore[arg-type]
                                                     "TASKPACK_TASKS_TOKEN": TOKEN},
                              tmp_path / "again.log", cwd=tmp_path)
        server = again
        server.wait_healthy()
        expect(page.locator("#live")).to_have_text("Live", timeout=15000)
        # ...and is drawn again once the live stream is back.
        expect(page.get_by_role("heading", name="Runs")).to_be_visible()
        ran = httpx.post(f"{server.url}/_nitro/tasks/echo:payload",
                         json={"payload": {"after": "restart"}}, headers=auth)
        assert ran.status_code == 200
        expect(page.locator("#runs-body tr", has_text="echo:payload").first).to_be_visible(
            timeout=5000)
    finally:
        server.stop()
