"""The HTTP task API at the ASGI level (no server): the app is called with
real ASGI messages, as uvicorn would, and tasks are real files on disk."""

from __future__ import annotations

import asyncio
import json
import logging
import textwrap
from pathlib import Path
from typing import Any

import pytest

from taskpack.http import (
    AccessPolicy,
    HttpRequest,
    HttpResponse,
    TaskApi,
    asgi_app,
    bearer_token,
    handle,
    loopback_only,
    request_payload,
)
from taskpack.registry import Registry, ScheduleEntry, TaskEntry
from tests.asgi_driver import call

TASKS = {
    "echo/payload.py": """
        from taskpack import define_task

        @define_task(description="Echo the payload")
        async def run(event):
            return event.payload
    """,
    "boom.py": """
        from taskpack import define_task

        @define_task
        def run(event):
            raise RuntimeError("kaboom")
    """,
    "conflict.py": """
        from taskpack import TaskError, define_task

        @define_task
        def run(event):
            raise TaskError("already running elsewhere", status_code=409)
    """,
    "unjson.py": """
        from taskpack import define_task

        @define_task
        def run(event):
            return {"when": object()}
    """,
    "slow.py": """
        import asyncio
        from taskpack import define_task

        CALLS = []

        @define_task
        async def run(event):
            CALLS.append(event.payload)
            await asyncio.sleep(0.2)
            return {"calls": len(CALLS)}
    """,
    "ünï.py": """
        from taskpack import define_task

        @define_task
        def run(event):
            return {"name": event.name, "payload": event.payload}
    """,
}


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    root = tmp_path_factory.mktemp("project")
    entries = {}
    for relpath, source in TASKS.items():
        path = root / "tasks" / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source), encoding="utf-8")
        name = relpath.removesuffix(".py").replace("/", ":")
        entries[name] = TaskEntry(name, f"tasks/{relpath}", f"about {name}")
    entries["echo:payload"] = TaskEntry("echo:payload", "tasks/echo/payload.py", "Echo the payload")
    entries["todo"] = TaskEntry("todo", None, "Not written yet")
    schedules = (ScheduleEntry("* * * * *", ("echo:payload",)), ScheduleEntry("@daily", ("todo",)))
    return Registry(root, entries, schedules)


def make_app(registry: Registry, policy: AccessPolicy | None = None, **kwargs: Any) -> Any:
    api = TaskApi(registry, policy=policy or loopback_only(), **kwargs)
    return asgi_app(api)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# -- listing --------------------------------------------------------------------


def test_listing_has_descriptions_and_schedules(registry: Registry) -> None:
    status, headers, data = run(call(make_app(registry), "GET", "/_nitro/tasks"))
    assert status == 200
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert data["tasks"]["echo:payload"] == {"description": "Echo the payload"}
    assert data["tasks"]["todo"] == {"description": "Not written yet"}
    assert list(data["tasks"]) == sorted(data["tasks"])
    assert data["scheduledTasks"] == [
        {"cron": "* * * * *", "tasks": ["echo:payload"]},
        {"cron": "@daily", "tasks": ["todo"]},
    ]
    status, _, again = run(call(make_app(registry), "GET", "/_nitro/tasks/"))
    assert (status, again) == (200, data)


# -- payload --------------------------------------------------------------------


def test_query_params_become_payload_with_repeated_keys_as_lists(registry: Registry) -> None:
    status, _, data = run(
        call(make_app(registry), "GET", "/_nitro/tasks/echo:payload",
             query="field=value&array=1&array=2")
    )
    assert status == 200
    assert data == {"field": "value", "array": ["1", "2"]}


def test_empty_query_and_body_give_empty_payload(registry: Registry) -> None:
    status, _, data = run(call(make_app(registry), "POST", "/_nitro/tasks/echo:payload"))
    assert (status, data) == (200, {})


def test_body_payload_overrides_query(registry: Registry) -> None:
    body = json.dumps({"payload": {"field": "body", "n": 3, "nested": {"a": [1]}}}).encode()
    status, _, data = run(
        call(make_app(registry), "POST", "/_nitro/tasks/echo:payload",
             query="field=query&keep=1&keep=2", body=body)
    )
    assert status == 200
    assert data == {"field": "body", "keep": ["1", "2"], "n": 3, "nested": {"a": [1]}}


def test_body_without_payload_key_keeps_query(registry: Registry) -> None:
    status, _, data = run(
        call(make_app(registry), "POST", "/_nitro/tasks/echo:payload", query="a=1",
             body=b'{"other": true}')
    )
    assert (status, data) == (200, {"a": "1"})


def test_body_arriving_in_chunks(registry: Registry) -> None:
    status, _, data = run(
        call(make_app(registry), "POST", "/_nitro/tasks/echo:payload",
             body=[b'{"payl', b'oad": {"x"', b": 1}}"])
    )
    assert (status, data) == (200, {"x": 1})


def test_blank_values_and_encoded_query(registry: Registry) -> None:
    assert request_payload([("a", ""), ("b", "x"), ("a", "")], b"  \n") == {"a": ["", ""], "b": "x"}
    status, _, data = run(
        call(make_app(registry), "GET", "/_nitro/tasks/echo:payload",
             query="greeting=gr%C3%BC%C3%9F+dich&empty=")
    )
    assert (status, data) == (200, {"greeting": "grüß dich", "empty": ""})


def test_unicode_task_name_is_decoded(registry: Registry) -> None:
    request = HttpRequest.from_url(
        "get", "http://localhost/_nitro/tasks/%C3%BCn%C3%AF?x=%E2%9C%93",
        headers={"Host": "localhost"}, client_host="::1",
    )
    response = run(handle(TaskApi(registry, policy=loopback_only()), request))
    assert response is not None
    assert (response.status, response.json()) == (200, {"name": "ünï", "payload": {"x": "✓"}})
    status, _, data = run(call(make_app(registry), "GET", "/_nitro/tasks/nöpe"))
    assert (status, data["message"]) == (404, "Task `nöpe` is not available!")


# -- errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "request body is not valid JSON"),
        (b"[1, 2]", "request body must be a JSON object, got an array"),
        (b'"text"', "request body must be a JSON object, got a string"),
        (b'{"payload": [1]}', '"payload" must be a JSON object, got an array'),
        (b'{"payload": "x"}', '"payload" must be a JSON object, got a string'),
        (b'{"payload": null}', '"payload" must be a JSON object, got null'),
        (b"\xff\xfe{}", "request body is not UTF-8 text"),
    ],
)
def test_bad_body_is_400(registry: Registry, body: bytes, message: str) -> None:
    status, _, data = run(call(make_app(registry), "POST", "/_nitro/tasks/echo:payload", body=body))
    assert status == 400
    assert data["error"] is True and data["statusCode"] == 400
    assert data["message"].startswith(message)


def test_unknown_task_is_404_and_unimplemented_is_501(registry: Registry) -> None:
    app = make_app(registry)
    assert run(call(app, "GET", "/_nitro/tasks/missing"))[::2] == (
        404, {"error": True, "statusCode": 404, "message": "Task `missing` is not available!"}
    )
    assert run(call(app, "POST", "/_nitro/tasks/todo"))[::2] == (
        501, {"error": True, "statusCode": 501, "message": "Task `todo` is not implemented!"}
    )


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [("PUT", "/_nitro/tasks/echo:payload", "GET, POST"), ("DELETE", "/_nitro/tasks/x", "GET, POST"),
     ("POST", "/_nitro/tasks", "GET")],
)
def test_other_methods_are_405(registry: Registry, method: str, path: str, allow: str) -> None:
    status, headers, data = run(call(make_app(registry), method, path))
    assert (status, headers["allow"], data["statusCode"]) == (405, allow, 405)


def test_body_over_limit_is_413_from_content_length(registry: Registry) -> None:
    app = make_app(registry, body_limit=10)
    status, _, data = run(
        call(app, "POST", "/_nitro/tasks/echo:payload",
             headers=[("host", "localhost"), ("content-length", "11")], body=b"x" * 11)
    )
    assert (status, data["statusCode"]) == (413, 413)
    assert "limit of 10 bytes" in data["message"]


def test_body_over_limit_is_413_while_streaming(registry: Registry) -> None:
    # No content-length (chunked): the app stops reading at the first chunk
    # past the limit; the remaining chunks are never received.
    app = make_app(registry, body_limit=10)
    status, _, _ = run(
        call(app, "POST", "/_nitro/tasks/echo:payload", body=[b"123456", b"789012", b"never"])
    )
    assert status == 413
    status, _, data = run(
        call(app, "POST", "/_nitro/tasks/echo:payload", body=[b'{"a":', b"1}"])
    )
    assert (status, data) == (200, {})


def test_body_over_limit_through_core(registry: Registry) -> None:
    api = TaskApi(registry, policy=loopback_only(), body_limit=4)
    request = HttpRequest("POST", "/_nitro/tasks/echo:payload", body=b"{}   ",
                          client_host="127.0.0.1")
    response = run(handle(api, request))
    assert response is not None and response.status == 413


def test_task_exception_is_500_with_message_only(registry: Registry) -> None:
    status, _, data = run(call(make_app(registry), "GET", "/_nitro/tasks/boom"))
    assert (status, data) == (500, {"error": True, "statusCode": 500, "message": "kaboom"})


def test_task_exception_in_dev_has_traceback(registry: Registry) -> None:
    status, _, data = run(call(make_app(registry, dev=True), "GET", "/_nitro/tasks/boom"))
    assert status == 500 and data["message"] == "kaboom"
    assert data["exception"] == "RuntimeError"
    assert "RuntimeError: kaboom" in data["traceback"]
    assert "boom.py" in data["traceback"]


def test_task_error_subclass_maps_its_status(registry: Registry) -> None:
    status, _, data = run(call(make_app(registry), "GET", "/_nitro/tasks/conflict"))
    assert (status, data["message"]) == (409, "already running elsewhere")


def test_unserialisable_result_is_500_naming_the_task(registry: Registry) -> None:
    status, _, data = run(call(make_app(registry), "GET", "/_nitro/tasks/unjson"))
    assert status == 500
    assert data["message"].startswith(
        "task `unjson` returned a value that is not JSON-serialisable"
    )


def test_paths_outside_the_api(registry: Registry) -> None:
    api = TaskApi(registry, policy=loopback_only())
    for path in ("/", "/_nitro/tasksx", "/_nitro", "/api/tasks"):
        assert run(handle(api, HttpRequest("GET", path, client_host="127.0.0.1"))) is None
        status, _, data = run(call(asgi_app(api), "GET", path))
        assert (status, data["statusCode"]) == (404, 404)


def test_mounted_under_a_root_path(registry: Registry) -> None:
    app = make_app(registry)
    status, _, data = run(call(app, "GET", "/_nitro/tasks/echo:payload", query="q=%E2%9C%93",
                               root_path="/admin"))
    assert (status, data) == (200, {"q": "✓"})


def test_fallback_app_gets_other_paths(registry: Registry) -> None:
    seen: list[str] = []

    async def fallback(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["path"])
        body = b'{"from": "fallback"}'
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    app = asgi_app(TaskApi(registry, policy=loopback_only()), fallback=fallback)
    assert run(call(app, "GET", "/hello"))[::2] == (200, {"from": "fallback"})
    assert run(call(app, "GET", "/_nitro/tasks"))[0] == 200
    assert seen == ["/hello"]


# -- access policies ----------------------------------------------------------------


@pytest.mark.parametrize("client", ["127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"])
def test_loopback_clients_are_admitted(registry: Registry, client: str) -> None:
    assert run(call(make_app(registry), "GET", "/_nitro/tasks", client=(client, 1)))[0] == 200


@pytest.mark.parametrize("client", [("10.0.0.7", 1), ("192.168.1.2", 1), ("2001:db8::1", 1), None])
def test_non_loopback_clients_are_refused(registry: Registry, client: Any) -> None:
    app = make_app(registry)
    for method, path in (("GET", "/_nitro/tasks"), ("POST", "/_nitro/tasks/echo:payload")):
        status, _, data = run(call(app, method, path, client=client))
        assert (status, data["statusCode"]) == (403, 403)
        assert data["message"] == "the task API answers loopback clients only"


def test_loopback_refuses_foreign_host_and_cross_site_origin(registry: Registry) -> None:
    app = make_app(registry)
    foreign = [("host", "evil.example:3000")]
    status, _, data = run(call(app, "GET", "/_nitro/tasks", headers=foreign))
    assert status == 403 and "loopback hosts only" in data["message"]
    status, _, data = run(call(app, "POST", "/_nitro/tasks/echo:payload",
                               headers=[("host", "localhost:3000"),
                                        ("origin", "https://evil.example")]))
    assert status == 403 and "cross-origin" in data["message"]
    for host, origin in (("localhost:3000", "http://localhost:5173"), ("[::1]:3000", None),
                         ("app.localhost", "http://127.0.0.1:8000")):
        headers = [("host", host)] + ([("origin", origin)] if origin else [])
        assert run(call(app, "GET", "/_nitro/tasks", headers=headers))[0] == 200


def test_bearer_token(registry: Registry) -> None:
    app = make_app(registry, policy=bearer_token("s3cret"))
    remote = ("203.0.113.9", 4444)
    status, headers, data = run(call(app, "GET", "/_nitro/tasks", headers=[], client=remote))
    assert (status, data["message"]) == (401, "missing bearer token")
    assert headers["www-authenticate"].startswith("Bearer")
    for value in ("Bearer wrong", "Bearer s3cre", "Basic s3cret", "s3cret", "Bearer "):
        status, _, _ = run(call(app, "GET", "/_nitro/tasks",
                                headers=[("authorization", value)], client=remote))
        assert status == 401, value
    status, _, data = run(call(app, "GET", "/_nitro/tasks/echo:payload", query="a=1",
                               headers=[("authorization", "bearer s3cret")], client=remote))
    assert (status, data) == (200, {"a": "1"})


def test_refused_before_reading_the_body(registry: Registry) -> None:
    app = make_app(registry, policy=bearer_token("t"))
    status, _, _ = run(call(app, "POST", "/_nitro/tasks/echo:payload", body=[b"x", b"y"]))
    assert status == 401


@pytest.mark.parametrize("token", ["", "   "])
def test_bearer_token_refuses_empty_token(token: str) -> None:
    with pytest.raises(ValueError, match="non-empty"):
        bearer_token(token)


def test_policy_is_required(registry: Registry) -> None:
    with pytest.raises(TypeError):
        TaskApi(registry)  # type: ignore[call-arg]


# -- behaviour --------------------------------------------------------------------


def test_concurrent_requests_join_one_run(registry: Registry) -> None:
    app = make_app(registry)

    async def many() -> list[Any]:
        return await asyncio.gather(
            *(call(app, "GET", "/_nitro/tasks/slow", query=f"i={i}") for i in range(20))
        )

    results = run(many())
    assert {(status, json.dumps(data)) for status, _, data in results} == {
        (200, json.dumps({"calls": 1}))
    }


def test_one_log_line_per_run_and_the_access_log_when_asked(
        registry: Registry, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="taskpack"):
        run(call(make_app(registry), "POST", "/_nitro/tasks/echo:payload"))
        run(call(make_app(registry), "GET", "/_nitro/tasks/missing"))  # not a run: no line
    lines = [(r.name, r.getMessage()) for r in caplog.records]
    assert len(lines) == 1 and lines[0][0] == "taskpack.run"
    assert lines[0][1].startswith("task=echo:payload trigger=http outcome=ok attempts=1 ")
    caplog.clear()
    api = TaskApi(registry, policy=loopback_only())
    with caplog.at_level(logging.INFO, logger="taskpack"):
        run(call(asgi_app(api, access_log=True), "GET", "/_nitro/tasks/missing?x=%0A"))
    (access,) = [r for r in caplog.records if r.name == "taskpack.access"]
    assert access.taskpack["path"] == "/_nitro/tasks/missing?x=%0A"  # type: ignore[attr-defined]
    assert access.getMessage().startswith('method=GET path="/_nitro/tasks/missing?x=%0A" '
                                          "status=404 duration_ms=")


def test_registry_can_be_swapped(registry: Registry, tmp_path: Path) -> None:
    api = TaskApi(registry, policy=loopback_only())
    app = asgi_app(api)
    api.registry = Registry(tmp_path, {"only": TaskEntry("only", None, "new")})
    status, _, data = run(call(app, "GET", "/_nitro/tasks"))
    assert status == 200
    assert data == {"tasks": {"only": {"description": "new"}}, "scheduledTasks": []}


def test_response_type_is_exported() -> None:
    response = HttpResponse(200, {}, b'{"a": 1}')
    assert response.json() == {"a": 1}


# -- lifespan -------------------------------------------------------------------------


async def lifespan(app: Any, fail_at: str | None = None) -> list[str]:
    events = ["lifespan.startup", "lifespan.shutdown"]
    sent: list[str] = []

    async def receive() -> dict[str, Any]:
        return {"type": events.pop(0)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message["type"])

    await app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
    return sent


def test_lifespan_runs_hooks(registry: Registry) -> None:
    calls: list[str] = []

    async def start() -> None:
        calls.append("start")

    api = TaskApi(registry, policy=loopback_only())
    app = asgi_app(api, on_startup=[start, lambda: calls.append("sync") and None],
                   on_shutdown=[lambda: calls.append("stop") and None])
    assert run(lifespan(app)) == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert calls == ["start", "sync", "stop"]


def test_lifespan_reports_failed_startup(registry: Registry) -> None:
    def broken() -> None:
        raise OSError("port in use")

    app = asgi_app(TaskApi(registry, policy=loopback_only()), on_startup=[broken])
    assert run(lifespan(app)) == ["lifespan.startup.failed"]


def test_lifespan_reports_failed_shutdown(registry: Registry) -> None:
    calls: list[str] = []

    def broken() -> None:
        raise OSError("disk full")

    app = asgi_app(TaskApi(registry, policy=loopback_only()),
                   on_shutdown=[broken, lambda: calls.append("after") and None])
    assert run(lifespan(app)) == ["lifespan.startup.complete", "lifespan.shutdown.failed"]
    assert calls == []


def test_lifespan_wraps_fallback_lifespan(registry: Registry) -> None:
    calls: list[str] = []

    async def fallback(scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "lifespan"
        await receive()
        calls.append("fallback start")
        await send({"type": "lifespan.startup.complete"})
        await receive()
        calls.append("fallback stop")
        await send({"type": "lifespan.shutdown.complete"})

    async def no_lifespan(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("only http")

    api = TaskApi(registry, policy=loopback_only())
    app = asgi_app(api, fallback=fallback, on_startup=[lambda: calls.append("start") and None],
                   on_shutdown=[lambda: calls.append("stop") and None])
    assert run(lifespan(app)) == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert calls == ["start", "fallback start", "fallback stop", "stop"]
    app = asgi_app(api, fallback=no_lifespan)
    assert run(lifespan(app)) == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
