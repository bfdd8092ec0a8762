"""Issue 11, item 13: one rule for configured secrets on every platform.

``CRON_SECRET`` and ``TASKPACK_TASKS_TOKEN`` are read with surrounding
whitespace stripped (a trailing newline from a secrets file must still
match what callers send) and a blank one counts as unset, which every
platform refuses to serve. The Vercel and Cloudflare entries are driven
through their request handlers with their documented inputs (an ASGI
request for Vercel, workerd's ``env``/``ctx`` stand-ins for Cloudflare);
the server preset through ``BundleApp.load``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from taskpack.cloudflare import Worker
from taskpack.http import HttpRequest, bearer_token, configured_secret
from taskpack.registry import Registry, TaskEntry
from taskpack.server import ServerConfigError, ServerOptions, token_from_env
from taskpack.vercel import CronRoute, cron_path, vercel_app
from tests.asgi_driver import call
from tests.helpers import write_files

ECHO = """
from taskpack import define_task

@define_task
def run(event):
    return {"ran": True}
"""
PADDED = ["s3cret\n", "  s3cret  ", "\ts3cret\r\n"]
BLANK = ["", "   ", "\n"]


def registry(root: Path, threads: bool = True) -> Registry:
    write_files(root, {"echo.py": ECHO})
    return Registry(root, {"echo": TaskEntry("echo", "echo.py")}, threads=threads)


def test_the_rule() -> None:
    assert [configured_secret(value) for value in PADDED] == ["s3cret"] * 3
    assert [configured_secret(value) for value in [*BLANK, None, 42]] == [None] * 5
    policy = bearer_token("s3cret\n")
    ok = HttpRequest.from_url("GET", "/", headers={"authorization": "Bearer s3cret"})
    assert policy(ok) is None
    for value in BLANK:
        with pytest.raises(ValueError, match="non-empty"):
            bearer_token(value)


@pytest.mark.parametrize("secret", PADDED)
def test_vercel_cron_secret_with_whitespace_still_matches(tmp_path: Path, secret: str) -> None:
    route = CronRoute(cron_path("0 * * * *"), "0 * * * *", ("echo",))
    app = vercel_app(registry(tmp_path), [route], environ={"CRON_SECRET": secret})
    headers = [("authorization", "Bearer s3cret")]
    status, _, body = asyncio.run(call(app, "GET", route.path, headers=headers))
    assert (status, body["success"]) == (200, True)
    wrong = [("authorization", "Bearer x")]
    assert asyncio.run(call(app, "GET", route.path, headers=wrong))[0] == 401


@pytest.mark.parametrize("secret", PADDED)
def test_vercel_tasks_token_with_whitespace_still_matches(tmp_path: Path, secret: str) -> None:
    app = vercel_app(registry(tmp_path), [], tasks_api=True,
                     environ={"TASKPACK_TASKS_TOKEN": secret})
    headers = [("authorization", "Bearer s3cret")]
    status, _, body = asyncio.run(call(app, "POST", "/_nitro/tasks/echo", headers=headers))
    assert (status, body) == (200, {"ran": True})


@pytest.mark.parametrize("blank", BLANK)
def test_vercel_blank_secrets_are_refused(tmp_path: Path, blank: str) -> None:
    route = CronRoute(cron_path("0 * * * *"), "0 * * * *", ("echo",))
    app = vercel_app(registry(tmp_path), [route], tasks_api=True,
                     environ={"CRON_SECRET": blank, "TASKPACK_TASKS_TOKEN": blank})
    for method, path in (("GET", route.path), ("POST", "/_nitro/tasks/echo")):
        headers = [("authorization", f"Bearer {blank}")]
        status, _, body = asyncio.run(call(app, method, path, headers=headers))
        assert status == 500 and "is not set" in body["message"]


class Ctx:
    def waitUntil(self, awaitable: Any) -> None:
        pass


def cloudflare_fetch(worker: Worker, token: str, sent: str) -> tuple[int, Any]:
    request = HttpRequest.from_url("POST", "https://w.example/_nitro/tasks/echo",
                                   headers={"authorization": f"Bearer {sent}"})

    async def read_body() -> bytes:
        return b""

    env = SimpleNamespace(TASKPACK_TASKS_TOKEN=token)
    response = asyncio.run(worker.fetch(request, read_body, env=env, ctx=Ctx()))
    return response.status, response.json()


@pytest.mark.parametrize("secret", PADDED)
def test_cloudflare_token_with_whitespace_still_matches(tmp_path: Path, secret: str) -> None:
    worker = Worker(registry(tmp_path, threads=False), {}, tasks_api=True)
    assert cloudflare_fetch(worker, secret, "s3cret") == (200, {"ran": True})
    assert cloudflare_fetch(worker, secret, "other")[0] == 401


@pytest.mark.parametrize("blank", BLANK)
def test_cloudflare_blank_token_is_refused(tmp_path: Path, blank: str) -> None:
    worker = Worker(registry(tmp_path, threads=False), {}, tasks_api=True)
    status, body = cloudflare_fetch(worker, blank, blank)
    assert status == 500 and "is not set" in body["message"]


def test_server_preset_follows_the_same_rule() -> None:
    options = ServerOptions(tasks_api=True)
    assert token_from_env(options, {"TASKPACK_TASKS_TOKEN": "s3cret\n"}) == "s3cret"
    for blank in BLANK:
        with pytest.raises(ServerConfigError, match="is empty"):
            token_from_env(options, {"TASKPACK_TASKS_TOKEN": blank})
