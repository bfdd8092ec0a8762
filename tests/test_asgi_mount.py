"""The ``asgi`` preset's app.py mounted in a real Starlette application:
its routes answer below the mount prefix and the host's lifespan runs the
bundle's scheduler."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from click.testing import CliRunner
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from taskpack import set_registry
from taskpack.builder.cli import main
from tests.helpers import stored_runs

TOKEN = "mount-token"


@pytest.fixture
def bundle_app(basic_example: Path, tmp_path: Path,
               monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["build", "--root", str(basic_example), "--preset",
                                       "node_middleware", "--output", str(out)])
    assert result.exit_code == 0, result.output
    monkeypatch.setenv("TASKPACK_TASKS_TOKEN", TOKEN)
    monkeypatch.setenv("TASKPACK_DATABASE_URL", f"sqlite:///{tmp_path / 'store.sqlite'}")
    path, modules = list(sys.path), set(sys.modules)
    spec = importlib.util.spec_from_file_location("bundle_app_under_test",
                                                  out / "server" / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    sys.path[:] = path
    for name in set(sys.modules) - modules:
        del sys.modules[name]
    set_registry(None)


def test_mounted_in_starlette(bundle_app: ModuleType) -> None:
    async def home(request: Request) -> PlainTextResponse:
        return PlainTextResponse("home")

    host = Starlette(routes=[Route("/", home), Mount("/jobs", app=bundle_app.tasks_app)],
                     lifespan=bundle_app.lifespan)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with TestClient(host) as client:
        assert bundle_app.bundle.scheduler is not None  # the host's lifespan started it
        assert client.get("/").text == "home"
        health = client.get("/jobs/_health").json()
        assert {k: health[k] for k in ("status", "tasks")} == {"status": "ok", "tasks": 4}
        assert health["store"] == {"ok": True, "backend": "sqlite", "error": None,
                                   "lost_runs": 0}
        response = client.post("/jobs/_nitro/tasks/echo:payload", json={"payload": {"a": 1}},
                               headers=auth)
        assert (response.status_code, response.json()) == (200, {"result": {"a": 1}})
        assert client.post("/jobs/_nitro/tasks/echo:payload").status_code == 401
        listing = client.get("/jobs/_nitro/tasks", headers=auth).json()
        assert "cms:update" in listing["tasks"]
        assert client.get("/_nitro/tasks", headers=auth).status_code == 404  # only below /jobs
    assert bundle_app.bundle.scheduler is None  # and its shutdown stopped it
    # The run went to $TASKPACK_DATABASE_URL, written at shutdown at the latest.
    (run,) = stored_runs(Path(os.environ["TASKPACK_DATABASE_URL"][len("sqlite:///"):]),
                         "echo:payload")
    assert (run.trigger, run.outcome, run.attempts) == ("http", "ok", 1)


def test_standalone_app_is_the_same_bundle(bundle_app: ModuleType) -> None:
    with TestClient(bundle_app.app) as client:
        assert bundle_app.bundle.scheduler is not None
        assert client.get("/_health").json()["tasks"] == 4
    assert bundle_app.bundle.scheduler is None
