"""``taskpack task list`` and ``taskpack task run``: through the running dev
server when there is one, else in-process on the project's registry (its
runs recorded in the project's store, see :mod:`taskpack.builder.db`)."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import click

from taskpack import Registry, TaskError, set_registry
from taskpack.http import dump_result, json_kind
from taskpack.logs import RUN_LOGGER, silenced
from taskpack.store import Store
from taskpack.store.sqlite import SQLiteStore

from .cli_options import project_root, root_option
from .db import StoreProblem, open_store, project_store, run_on_store
from .devclient import DevServerError, DevServerGone, fetch_listing, run_remote
from .devstate import DevState, live_server
from .errors import TaskFailedError, TaskpackError, UsageError
from .manifest import build_manifest
from .project import Project, load_project
from .runs import format_duration


def open_project(root: Path) -> Project:
    """Load the project at ``root`` (``--root``); its warnings go to stderr."""
    project = load_project(project_root(root))
    for warning in project.warnings:
        click.echo(f"warning: {warning}", err=True)
    return project


def local_registry(project: Project) -> Registry:
    """An in-process registry for ``project``, made current for ``run_task``;
    its runs go to the project's store (``taskpack runs``)."""
    registry = Registry.from_manifest(build_manifest(project), project.root,
                                      store=project_store(project))
    set_registry(registry)
    return registry


def parse_payload(text: str | None) -> dict[str, Any]:
    """``--payload``: a JSON object, else :class:`UsageError`."""
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError("--payload", f"invalid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise UsageError("--payload", f"expected a JSON object, got {json_kind(value)}")
    return value


# Statuses of task errors that are the caller's fault: unknown task, a
# payload the task's schema refuses, no handler.
CALLER_ERRORS = (404, 422, 501)


def fail_task(ctx: click.Context, name: str, exc: BaseException) -> NoReturn:
    """Report a failed run: exit 2 for task-system errors that are the
    caller's fault (unknown task, no handler, a payload the task's schema
    refuses), else 1."""
    if ctx.meta.get("taskpack.debug"):
        if isinstance(exc, DevServerError):
            if exc.traceback:
                click.echo(exc.traceback.rstrip("\n"), err=True)
        else:
            traceback.print_exception(exc, file=sys.stderr)
    if isinstance(exc, TaskError) and exc.status_code in CALLER_ERRORS:
        raise TaskpackError(exc.message)
    if isinstance(exc, DevServerError) and exc.exception is not None:
        raise TaskFailedError(failure_line(name, exc.exception, exc.message))
    if isinstance(exc, TaskError):
        raise TaskFailedError(exc.message)
    raise TaskFailedError(failure_line(name, type(exc).__name__, str(exc)))


def failure_line(name: str, exception: str, message: str) -> str:
    """How a task that raised is reported, in-process or via the dev server
    (which sends the exception's class name and message)."""
    what = exception if message in ("", exception) else f"{exception}: {message}"
    return f"task `{name}` failed: {what}"


def dev_server(root: Path, local: bool) -> DevState | None:
    """The running ``taskpack dev`` of the project at ``root``, unless
    ``--local`` or there is none (a stale ``dev.json`` is cleaned up)."""
    if local or not root.is_dir():
        return None
    return live_server(root)


local_option = click.option(
    "--local", is_flag=True,
    help="Run in-process even when `taskpack dev` is running for the project.",
)


@click.group()
def task() -> None:
    """List and run tasks."""


@task.command("list")
@root_option()
@click.option("--json", "as_json", is_flag=True, help="Print the listing as JSON.")
@local_option
def task_list(root: Path, as_json: bool, local: bool) -> None:
    """List tasks with their descriptions, schedules and last runs (from the
    running dev server when there is one)."""
    # The project on disk is loaded first, also when a dev server runs: a
    # broken config is reported (exit 2), not hidden behind the server's
    # last good version.
    project = open_project(root)
    server = dev_server(root, local)
    listing = None
    if server is not None:
        with contextlib.suppress(DevServerGone):
            listing = fetch_listing(server)
    if listing is None:
        listing = local_listing(project)
    echo_listing(listing, as_json)
    if not listing["tasks"] and not as_json:
        click.echo(f"Write one under {project.config.tasks_dir}/, or scaffold a project "
                   "with `taskpack init`.")


def local_listing(project: Project) -> dict[str, Any]:
    """What the dev server's ``GET /_nitro/tasks`` answers, in-process: the
    listing with each task's ``"lastRun"`` read from the project's store
    (the one ``taskpack dev`` and ``task run`` write; a SQLite store is not
    created when it does not exist yet)."""
    store = project_store(project)
    registry = Registry.from_manifest(build_manifest(project), project.root, store=store)
    if isinstance(store, SQLiteStore) and not store.path.exists():
        listing = registry.listing()
        for info in listing["tasks"].values():
            info["lastRun"] = None
        return listing

    async def read(store: Store) -> dict[str, Any]:
        try:
            await open_store(store)
        except StoreProblem as exc:  # like a failed write, it never fails the listing
            logging.getLogger("taskpack.store").error("%s", exc)
        return await registry.listing_with_last_runs()

    return run_on_store(store, read)


def echo_listing(listing: dict[str, Any], as_json: bool) -> None:
    """Print a Nitro-shaped task listing as JSON or as a table (with each
    task's last run when the listing has them)."""
    if as_json:
        click.echo(json.dumps(listing, indent=2, ensure_ascii=False))
        return
    schedules: dict[str, list[str]] = {}
    for entry in listing["scheduledTasks"]:
        for name in entry["tasks"]:
            schedules.setdefault(name, []).append(entry["cron"])
    if not listing["tasks"]:
        click.echo("No tasks.")
        return
    width = max(len(name) for name in listing["tasks"])
    for name, info in listing["tasks"].items():
        line = f"{name:<{width}}  {info['description']}".rstrip()
        if name in schedules:
            line += f"  [{', '.join(schedules[name])}]"
        last = info.get("lastRun")
        if last:
            started = datetime.fromtimestamp(last["started_at"], UTC).strftime("%Y-%m-%d %H:%M:%S")
            line += (f"  (last run: {last['outcome']} at {started} UTC, "
                     f"{format_duration(last['duration_ms'])})")
        click.echo(line)


@task.command("run")
@click.argument("name")
@root_option()
@click.option("--payload", help="The payload, a JSON object.")
@local_option
@click.pass_context
def task_run(ctx: click.Context, name: str, root: Path, payload: str | None,
             local: bool) -> None:
    """Run task NAME and print its result as JSON (on the running dev server
    when there is one)."""
    data = parse_payload(payload)
    project = open_project(root)  # a broken project is an error, dev server or not
    server = dev_server(root, local)
    if server is not None:
        click.echo(f"taskpack: running `{name}` on the dev server at {server.base_url}; "
                   "its output is in that server's terminal (--local runs it here)", err=True)
        try:
            result = run_remote(server, name, data)
        except DevServerError as exc:
            fail_task(ctx, name, exc)
        except DevServerGone:
            # It stopped since it was found: run in-process.
            click.echo("taskpack: the dev server is gone; running here", err=True)
        else:
            echo_result(name, result)
            return
    registry = local_registry(project)

    async def main(store: Store) -> Any:
        await open_store(store)
        try:
            return await registry.run(name, data)
        finally:
            await registry.drain()

    try:
        # The result is the only thing on stdout; what the task prints goes to
        # stderr. The command reports the run itself (its result or one error
        # line), as for a run on the dev server, so the run's log line is not shown.
        with contextlib.redirect_stdout(sys.stderr), silenced(RUN_LOGGER):
            result = run_on_store(registry.store, main)
    except TaskpackError:
        raise
    except Exception as exc:
        fail_task(ctx, name, exc)
    echo_result(name, result)


def echo_result(name: str, result: Any) -> None:
    """Print a task's result as JSON (exit 1 if it is not serialisable)."""
    try:
        text = dump_result(name, result)
    except TaskError as exc:
        raise TaskFailedError(exc.message) from None
    click.echo(text)
