"""The runtime core: define_task, lazy loading, run_task and same-tick dedupe."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taskpack import (
    Registry,
    Task,
    TaskContext,
    TaskEvent,
    TaskLoadError,
    TaskNotFoundError,
    TaskNotImplementedError,
    define_task,
    get_registry,
    run_task,
    run_task_sync,
    set_registry,
)
from taskpack.registry import TaskEntry
from tests.helpers import MakeProject


def registry_for(root: Path, handlers: dict[str, str | None]) -> Registry:
    return Registry(root, {name: TaskEntry(name, h) for name, h in handlers.items()})


@pytest.fixture(autouse=True)
def no_current_registry() -> Iterator[None]:
    yield
    set_registry(None)


def test_define_task_forms() -> None:
    def fn(event: TaskEvent) -> int:
        return 1

    plain = define_task(fn)
    assert isinstance(plain, Task)
    assert (plain.run, plain.name, plain.description) == (fn, None, None)
    assert define_task(run=fn, description="d").description == "d"
    decorated = define_task(name="n", description="d")(fn)
    assert (decorated.name, decorated.description, decorated.run) == ("n", "d", fn)
    assert not decorated.is_async


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"run": 3}, "define_task: run must be callable, got int"),
    ({"description": 3}, "define_task: description must be a string, got int"),
    ({"name": b"x"}, "define_task: name must be a string, got bytes"),
])
def test_define_task_validates(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(TypeError) as info:
        define_task(**kwargs)
    assert str(info.value) == message


def test_run_returns_the_result_and_copies_the_payload(make_project: MakeProject) -> None:
    root = make_project({"tasks/echo.py": """
        from taskpack import define_task

        @define_task
        async def run(event):
            event.payload["seen"] = True
            return {"result": event.payload, "name": event.name}
    """})
    set_registry(registry_for(root, {"echo": "tasks/echo.py"}))
    payload = {"a": 1}
    assert run_task_sync("echo", payload) == {"result": {"a": 1, "seen": True}, "name": "echo"}
    assert payload == {"a": 1}


def test_unknown_and_unimplemented_tasks(make_project: MakeProject) -> None:
    registry = registry_for(make_project({}), {"later": None})
    with pytest.raises(TaskNotFoundError) as missing:
        asyncio.run(registry.run("nope"))
    assert (str(missing.value), missing.value.status_code) == ("Task `nope` is not available!", 404)
    with pytest.raises(TaskNotImplementedError) as later:
        asyncio.run(registry.run("later"))
    assert (str(later.value), later.value.status_code) == ("Task `later` is not implemented!", 501)


def test_run_task_without_registry() -> None:
    with pytest.raises(RuntimeError, match="no taskpack registry is active"):
        get_registry()


SLOW_COUNTER = """
import asyncio
from taskpack import define_task

calls = []

@define_task
async def run(event):
    calls.append(event.payload)
    await asyncio.sleep(0.05)
    if event.payload.get("fail"):
        raise ValueError("boom")
    return len(calls)
"""


def test_same_tick_calls_join_one_execution(make_project: MakeProject) -> None:
    root = make_project({"tasks/slow.py": SLOW_COUNTER})
    registry = registry_for(root, {"slow": "tasks/slow.py"})
    set_registry(registry)

    async def main() -> tuple[list[Any], Any]:
        results = await asyncio.gather(*(run_task("slow", {"i": i}) for i in range(100)))
        again = await run_task("slow", {"i": "again"})
        return results, again

    results, again = asyncio.run(main())
    assert results == [1] * 100  # the body ran once, for the first call
    assert again == 2  # nothing is cached after it finished


def test_joined_calls_share_the_exception(make_project: MakeProject) -> None:
    root = make_project({"tasks/slow.py": SLOW_COUNTER})
    registry = registry_for(root, {"slow": "tasks/slow.py"})

    async def main() -> list[Any]:
        return await asyncio.gather(*(registry.run("slow", {"fail": True}) for _ in range(5)),
                                    return_exceptions=True)

    errors = asyncio.run(main())
    assert all(isinstance(e, ValueError) and str(e) == "boom" for e in errors)
    assert len({id(e) for e in errors}) == 1


def test_sync_tasks_run_in_a_worker_thread(make_project: MakeProject) -> None:
    root = make_project({"tasks/where.py": """
        import threading
        from taskpack import define_task

        @define_task
        def run(event):
            return threading.current_thread().name
    """})
    assert asyncio.run(registry_for(root, {"where": "tasks/where.py"}).run("where")) \
        != threading.current_thread().name
    inline = Registry(root, {"where": TaskEntry("where", "tasks/where.py")}, threads=False)
    assert asyncio.run(inline.run("where")) == threading.current_thread().name


def test_modules_are_imported_lazily(make_project: MakeProject, tmp_path: Path) -> None:
    marker = tmp_path / "imported"
    root = make_project({"tasks/side.py": f"""
        open({str(marker)!r}, "a").write("x")
        from taskpack import define_task

        @define_task
        def run(event):
            return "ran"
    """})
    registry = registry_for(root, {"side": "tasks/side.py"})
    assert registry.listing()["tasks"] == {"side": {"description": ""}}
    assert not marker.exists() and not registry.is_loaded("side")
    assert asyncio.run(registry.run("side")) == "ran"
    assert asyncio.run(registry.run("side")) == "ran"
    assert marker.read_text() == "x"  # imported once


def test_task_files_never_shadow_modules(make_project: MakeProject) -> None:
    root = make_project({
        "json.py": "raise RuntimeError('the root json.py was imported')\n",
        "builder.py": "raise RuntimeError('the root builder.py was imported')\n",
        "tasks/json.py": """
            import json
            from taskpack import define_task

            @define_task
            def run(event):
                return json.dumps({"ok": True})
        """,
        "tasks/other.py": """
            from taskpack import define_task
            import helpers

            @define_task
            def run(event):
                return helpers.VALUE
        """,
        "helpers.py": "VALUE = 'project helper'\n",
    })
    registry = registry_for(root, {"json": "tasks/json.py", "other": "tasks/other.py"})
    assert asyncio.run(registry.run("json")) == '{"ok": true}'
    assert asyncio.run(registry.run("other")) == "project helper"
    assert sys.modules["json"] is json
    assert "builder" not in sys.modules


@pytest.mark.parametrize(("source", "reason"), [
    ("x = 1\n", "tasks/t.py defines no task (decorate a function with @define_task)"),
    ("from taskpack import define_task\n"
     "a = define_task(run=lambda e: 1)\nb = define_task(run=lambda e: 2)\n",
     "tasks/t.py defines more than one task (a, b); keep one per file"),
])
def test_bad_task_modules(make_project: MakeProject, source: str, reason: str) -> None:
    root = make_project({"tasks/t.py": source})
    with pytest.raises(TaskLoadError) as info:
        asyncio.run(registry_for(root, {"t": "tasks/t.py"}).run("t"))
    assert str(info.value) == f"Task `t`: cannot load handler tasks/t.py: {reason}"
    assert info.value.status_code == 500


def test_bad_option_in_a_task_file_names_the_task(make_project: MakeProject) -> None:
    """define_task checks options while the file is imported; the message names
    the task being loaded, not the private module it is imported under."""
    root = make_project({"tasks/db/migrate.py": "from taskpack import define_task\n"
                                                "@define_task(timeout=0)\n"
                                                "def run(event):\n    return 1\n"})
    with pytest.raises(ValueError) as info:
        asyncio.run(registry_for(root, {"db:migrate": "tasks/db/migrate.py"}).run("db:migrate"))
    assert str(info.value) == ("task 'db:migrate': option timeout: "
                               "must be a positive number of seconds, got 0")


def test_module_attr_handler_and_imported_tasks_do_not_count(make_project: MakeProject) -> None:
    root = make_project({
        "lib/jobs.py": "def plain(event):\n    return 'plain'\n",
        "tasks/reuse.py": """
            from taskpack import define_task
            from lib.shared import shared_task

            @define_task
            def run(event):
                return "own"
        """,
        "lib/shared.py": "from taskpack import define_task\n"
                         "shared_task = define_task(run=lambda e: 'shared')\n",
    })
    registry = registry_for(root, {"plain": "lib.jobs:plain", "reuse": "tasks/reuse.py",
                                   "bad": "lib.jobs:missing"})
    assert asyncio.run(registry.run("plain")) == "plain"
    assert asyncio.run(registry.run("reuse")) == "own"
    with pytest.raises(TaskLoadError, match=r"module lib\.jobs has no attribute 'missing'"):
        asyncio.run(registry.run("bad"))


def test_wait_until_work_is_drained_by_run_task_sync(make_project: MakeProject,
                                                     tmp_path: Path) -> None:
    out = tmp_path / "background"
    root = make_project({"tasks/bg.py": f"""
        import asyncio
        from taskpack import define_task

        async def later():
            await asyncio.sleep(0.05)
            open({str(out)!r}, "w").write("done")

        @define_task
        async def run(event):
            event.context.wait_until(later())
            return event.context.trigger
    """})
    set_registry(registry_for(root, {"bg": "tasks/bg.py"}))
    assert run_task_sync("bg") == "manual"
    assert out.read_text() == "done"


def test_context_extras_reach_the_task(make_project: MakeProject) -> None:
    root = make_project({"tasks/ctx.py": """
        from taskpack import define_task

        @define_task
        async def run(event):
            return [event.context.trigger, event.context.region]
    """})
    registry = registry_for(root, {"ctx": "tasks/ctx.py"})
    assert asyncio.run(registry.run("ctx", context={"region": "eu"})) == ["manual", "eu"]
    context = TaskContext(trigger="http", region="us")
    assert asyncio.run(registry.run("ctx", context=context)) == ["http", "us"]
