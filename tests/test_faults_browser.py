"""Issue 11, item 3 in a real browser (Playwright driving Debian's
Chromium, as the dashboard's browser tests do): a page from another site
cannot run a dev server's task, not with an image, a ``no-cors`` fetch, a
form or a CORS fetch; a typed URL does not run one either; the server's own
pages still run tasks with JSON POSTs."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import chromium
from tests.helpers import write_files
from tests.servers import free_port
from tests.test_faults_http import FILES, DevProcess

pytest.importorskip("playwright.sync_api")


ATTACK = """<!doctype html>
<title>another site</title>
<img id="img" src="{api}/note?via=img">
<iframe name="sink"></iframe>
<form id="form" method="post" action="{api}/note?via=form" target="sink">
  <input name="payload" value="x">
</form>
<script>
  const api = "{api}";
  // Each attempt settles, or counts as "timeout" after 10 s: a request the
  // server never answers must not hang the test (evaluate has no timeout).
  const bounded = attempt => Promise.race([
    attempt, new Promise(done => setTimeout(() => done("timeout"), 10000))]);
  window.attempts = Promise.allSettled([
    new Promise(done => {{
      const img = document.getElementById("img");
      img.onload = img.onerror = done;
    }}),
    fetch(api + "/note?via=nocors", {{mode: "no-cors"}}),
    fetch(api + "/note?via=nocors-post", {{mode: "no-cors", method: "POST", body: "{{}}"}}),
    fetch(api + "/note?via=cors", {{method: "POST", body: "{{}}",
                                    headers: {{"content-type": "application/json"}}}}),
    new Promise(done => {{
      document.querySelector("iframe").onload = done;
      document.getElementById("form").submit();
    }}),
  ].map(bounded)).then(results => results.map(r => r.status));
</script>
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevProcess]:
    root = write_files(tmp_path_factory.mktemp("browser") / "project",
                       {"tasks/note.py": FILES["tasks/note.py"],
                        "tasks/echo.py": FILES["tasks/echo.py"]})
    server = DevProcess(root)
    yield server
    assert server.stop() == 0, server.output()


@pytest.fixture
def attacker(tmp_path: Path, dev: DevProcess) -> Iterator[str]:
    """Another site: ``localhost`` on another port (the dev server is
    ``127.0.0.1``: a different site for the browser)."""
    (tmp_path / "index.html").write_text(ATTACK.format(api=f"{dev.url}/_nitro/tasks"))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://localhost:{server.server_address[1]}/index.html"
    server.shutdown()
    server.server_close()


def test_another_site_cannot_run_a_task(dev: DevProcess, browser: Any, attacker: str) -> None:
    page = browser.new_page()
    try:
        page.goto(attacker)
        statuses = page.evaluate("window.attempts")
        assert len(statuses) == 5
    finally:
        page.close()
    assert not (dev.root / "notes.txt").exists(), (dev.root / "notes.txt").read_text()


def test_a_typed_url_does_not_run_a_task_but_the_servers_pages_do(dev: DevProcess,
                                                                   browser: Any) -> None:
    page = browser.new_page()
    try:
        response = page.goto(f"{dev.url}/_nitro/tasks/note?via=address-bar")
        assert response is not None and response.status == 403
        assert not (dev.root / "notes.txt").exists()
        listing = page.goto(f"{dev.url}/_nitro/tasks")
        assert listing is not None and listing.status == 200
        result = page.evaluate("""async () => {
            const response = await fetch("/_nitro/tasks/echo", {
                method: "POST", headers: {"content-type": "application/json"},
                body: JSON.stringify({payload: {from: "page"}})});
            return [response.status, await response.json()];
        }""")
        assert result == [200, {"from": "page"}]
    finally:
        page.close()
