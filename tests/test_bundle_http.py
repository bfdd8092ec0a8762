"""The bundle's handler on taskpack's HTTP server (taskpack/handler.py,
taskpack/serving.py): a built server run as a real process, spoken to over
real sockets, for what the handler answers itself (bodies, limits, clients
that go) and what it hands to the ASGI app (the bridge); the lifespan
driver in-process. The server's own rules: tests/test_http1.py."""

from __future__ import annotations

import gc
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

import taskpack.server
from taskpack.builder.build import build
from taskpack.http import TaskApi, asgi_app, loopback_only
from taskpack.registry import Registry
from taskpack.serving import bind, run
from tests.helpers import ECHO, write_files
from tests.servers import ServerProcess, free_port

TOKEN = "bundle-http-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}

TASKS = {
    "tasks/echo.py": ECHO,
    "taskpack.toml": """
        [server]
        tasks_api = true
        dashboard = true
    """,
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = write_files(tmp_path_factory.mktemp("bundle-http") / "project", TASKS)
    build(root, preset="server", output=root / ".output")
    bundle = root / ".output" / "server"
    port = free_port()
    process = ServerProcess([sys.executable, str(bundle / "index.py")],
                            {"PORT": str(port), "TASKPACK_TASKS_TOKEN": TOKEN},
                            root / "server.log", cwd=root)
    try:
        process.wait_healthy()
        yield process
    finally:
        process.terminate()


def raw_request(server: ServerProcess, data: bytes, *, close_after: bool = False) -> bytes:
    """Send ``data`` on a fresh connection; what came back (until the server
    closes or 2 s of silence). ``close_after``: close at once without reading."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=2) as sock:
        sock.sendall(data)
        if close_after:
            return b""
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks) and b"connection: close" not in data.lower():
                    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
                    length = [line for line in head.lower().split(b"\r\n")
                              if line.startswith(b"content-length:")]
                    if length and len(body) >= int(length[0].split(b":")[1]):
                        break
        except TimeoutError:
            pass
        return b"".join(chunks)


def chunked(body: bytes, size: int = 1000) -> bytes:
    parts = [b"%x\r\n%s\r\n" % (len(body[i:i + size]), body[i:i + size])
             for i in range(0, len(body), size)]
    return b"".join(parts) + b"0\r\n\r\n"


def post_chunked(server: ServerProcess, body: bytes) -> bytes:
    head = (f"POST /_nitro/tasks/echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
            "Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n").encode()
    return raw_request(server, head + chunked(body))


def test_a_chunked_body_runs_the_task_and_one_over_the_limit_is_413(
        server: ServerProcess) -> None:
    answer = post_chunked(server, b'{"payload": {"size": "' + b"x" * 5000 + b'"}}')
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert answer.endswith(b'"}') and b"x" * 5000 in answer
    over = post_chunked(server, b'{"payload": {"size": "' + b"x" * (1024 * 1024) + b'"}}')
    assert over.startswith(b"HTTP/1.1 413"), over[:200]
    assert b"over the limit of 1048576 bytes" in over


def test_a_declared_length_over_the_limit_is_413_before_the_body(server: ServerProcess) -> None:
    head = (f"POST /_nitro/tasks/echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Length: {1024 * 1024 + 1}\r\n\r\n").encode()
    answer = raw_request(server, head)  # no body sent at all
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_a_client_gone_mid_body_runs_nothing_and_the_server_carries_on(
        server: ServerProcess) -> None:
    before = runs_of(server)
    head = (f"POST /_nitro/tasks/echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
            "Content-Length: 100\r\n\r\n").encode()
    for _ in range(5):
        raw_request(server, head + b'{"payload": {', close_after=True)
    time.sleep(0.3)
    response = httpx.post(f"{server.url}/_nitro/tasks/echo", json={"payload": {"a": 1}},
                          headers=AUTH, timeout=10)
    assert response.status_code == 200 and response.json() == {"a": 1}
    assert runs_of(server) == before + 1


def runs_of(server: ServerProcess) -> int:
    page = httpx.get(f"{server.url}/_nitro/tasks/echo/runs?limit=1000", headers=AUTH,
                     timeout=10).json()
    return len(page["runs"])


def test_query_string_payload_and_errors_keep_their_shape(server: ServerProcess) -> None:
    got = httpx.get(f"{server.url}/_nitro/tasks/echo?a=1&a=2&b=&c=%20x", headers=AUTH,
                    timeout=10)
    assert got.status_code == 200
    assert got.json() == {"a": ["1", "2"], "b": "", "c": " x"}
    assert got.headers["content-type"] == "application/json; charset=utf-8"
    assert int(got.headers["content-length"]) == len(got.content)
    refused = httpx.post(f"{server.url}/_nitro/tasks/echo", timeout=10)
    assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
    wrong = httpx.put(f"{server.url}/_nitro/tasks/echo", headers=AUTH, timeout=10)
    assert wrong.status_code == 405 and wrong.headers["allow"] == "GET, POST"


def test_bytes_that_are_not_utf8_get_the_error_shape(server: ServerProcess) -> None:
    body = httpx.post(f"{server.url}/_nitro/tasks/echo", content=b'{"payload": "\xff\xfe"}',
                      headers=AUTH, timeout=10)
    assert body.status_code == 400 and body.json()["message"] == "request body is not UTF-8 text"
    head = (f"POST /_nitro/tasks/%FF%FE HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
            "Content-Length: 0\r\n\r\n").encode()
    answer = raw_request(server, head)
    assert answer.startswith(b"HTTP/1.1 404"), answer[:200]
    assert b'"statusCode": 404' in answer
    assert httpx.get(f"{server.url}/_health", timeout=10).status_code == 200


def test_other_paths_reach_the_asgi_app(server: ServerProcess) -> None:
    head = httpx.head(f"{server.url}/_health", timeout=10)
    assert head.status_code == 200 and head.content == b""
    missing = httpx.post(f"{server.url}/nowhere", content=b"ignored body", timeout=10)
    assert missing.status_code == 404 and missing.json()["message"] == "no route for /nowhere"
    page = httpx.get(f"{server.url}/_taskpack/", headers=AUTH, timeout=10)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]


def test_a_bridged_body_over_the_limit_is_413_while_it_streams(server: ServerProcess) -> None:
    """A path of the ASGI app (the dashboard's API) has the same limit: a
    chunked body over it is refused once the limit is passed, without
    waiting for (or holding) the rest."""
    head = (f"POST /_taskpack/api/tasks/echo/run HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {TOKEN}\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
    part = b"x" * 65536
    unfinished = b"%x\r\n%s\r\n" % (len(part), part) * 20  # 1.25 MiB, never terminated
    answer = raw_request(server, head + unfinished)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_the_dashboard_live_stream_is_streamed(server: ServerProcess) -> None:
    with httpx.stream("GET", f"{server.url}/_taskpack/api/events", headers=AUTH,
                      timeout=10) as live:
        assert live.status_code == 200
        assert live.headers["content-type"].startswith("text/event-stream")
        assert "content-length" not in live.headers
        httpx.post(f"{server.url}/_nitro/tasks/echo", json={"payload": {"live": 1}},
                   headers=AUTH, timeout=10)
        seen = ""
        for text in live.iter_text():
            seen += text
            if '"live": 1' in seen or '"live":1' in seen:
                break
    assert "echo" in seen


# -- startup and shutdown around serving, in-process -------------------------------


def serve_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, startup_fails: bool = False,
                     shutdown_fails: bool = False, also: Callable[[], None] = lambda: None,
                     ) -> tuple[int, list[str]]:
    """``serving.run`` on a real socket: the given startup and
    shutdown, stopped by a SIGTERM as soon as it serves (after calling
    ``also``); its status and what ran. The SIGTERM's time, which the process keeps for its shutdown
    grace (``server.note_stop_signal``), is forgotten after the test."""
    monkeypatch.setattr(taskpack.server, "_stop_signalled", None)
    registry = Registry(tmp_path, {})
    api = TaskApi(registry, policy=loopback_only)
    done: list[str] = []

    async def startup() -> None:
        done.append("startup")
        if startup_fails:
            raise RuntimeError("it broke")

    async def shutdown() -> None:
        done.append("shutdown")
        if shutdown_fails:
            raise RuntimeError("it broke")

    def serving() -> None:
        done.append("serving")
        also()
        os.kill(os.getpid(), signal.SIGTERM)

    sock = bind("127.0.0.1", 0)
    status = run(asgi_app(api), api, sock, grace=1.0, startup=startup, shutdown=shutdown,
                 on_serving=serving)
    assert sock.fileno() == -1  # the server closed it
    return status, done


def test_startup_then_serving_then_shutdown(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    assert serve_in_process(tmp_path, monkeypatch) == (0, ["startup", "serving", "shutdown"])


def test_what_startup_made_is_frozen_before_serving(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The collector leaves alone what startup made (modules, tasks, the
    registry): a full collection under load then scans only what requests
    made (2.6 ms for the 22,000 objects of a 1,000-task bundle, else)."""
    gc.unfreeze()
    frozen: list[int] = []
    try:
        status, done = serve_in_process(tmp_path, monkeypatch,
                                        also=lambda: frozen.append(gc.get_freeze_count()))
    finally:
        gc.unfreeze()
    assert (status, done) == (0, ["startup", "serving", "shutdown"])
    assert frozen[0] > 1000  # this test process's objects, startup's among them


def test_a_failed_startup_serves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        caplog: pytest.LogCaptureFixture) -> None:
    assert serve_in_process(tmp_path, monkeypatch, startup_fails=True) == (1, ["startup"])
    assert "startup failed" in caplog.text and "it broke" in caplog.text


def test_a_failed_shutdown_is_status_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       caplog: pytest.LogCaptureFixture) -> None:
    assert serve_in_process(tmp_path, monkeypatch, shutdown_fails=True) == (
        1, ["startup", "serving", "shutdown"])
    assert "shutdown failed" in caplog.text and "it broke" in caplog.text


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_requests_leave_nothing_behind(server: ServerProcess) -> None:
    """Each request's task, coroutine and connection objects are freed once
    it is answered: the server's memory stays flat under sustained load (a
    leak of one request's objects is about 2 KiB; 6,000 requests would add
    over 10 MiB)."""
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=10) as client:
        def burst(count: int) -> None:
            for _ in range(count):
                assert client.post("/_nitro/tasks/echo", json={"payload": {}}).status_code == 200

        burst(1500)  # warm: caches, the history's bounded buffers, allocator arenas
        before = rss_kib(server.process.pid)
        burst(6000)
        after = rss_kib(server.process.pid)
    assert after - before < 4096, f"RSS grew by {after - before} KiB over 6,000 requests"
