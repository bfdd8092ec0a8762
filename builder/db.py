"""The project's store on the command line: :func:`project_store` (what
``taskpack dev``, ``task run``/``list`` and ``runs`` use) and the
``taskpack db migrate|status`` commands.

The store is ``$TASKPACK_DATABASE_URL``, else ``[store] url``, else the
SQLite default ``.taskpack/store.sqlite`` under the project root (see
:func:`taskpack.store.urls.resolve_url`). A store that cannot be used (a
URL no backend takes, a server that does not answer or refuses the login,
a schema newer than this taskpack) is one error line naming the host and
where the URL came from (never the password), exit 2.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import click

from taskpack.store import MigrationStatus, Store, StoreError, StoreUnavailable, store_for
from taskpack.store.urls import describe, resolve_url

from .cli_options import project_root, root_option
from .errors import TaskpackError
from .manifest import build_manifest
from .project import Project, load_project

T = TypeVar("T")


class StoreProblem(TaskpackError):
    """The store cannot be used (exit 2); one line."""


def project_store(project: Project, env: Mapping[str, str] | None = None) -> Store:
    """The store of ``project`` (not opened); :class:`StoreProblem` for a
    URL no backend takes."""
    settings = build_manifest(project)["store"]
    url, source = resolve_url(os.environ if env is None else env, settings)
    try:
        return store_for(url, root=project.root, history_limit=settings["history_limit"])
    except StoreError as exc:
        raise StoreProblem(f"{source}: {exc}") from None


async def open_store(store: Store) -> None:
    """Open ``store`` as a command starts: :class:`StoreProblem` when it
    cannot be used. A SQLite file whose disk refuses writes is no problem
    here (its runs are lost and counted; commands keep working)."""
    try:
        await store.open()
    except StoreUnavailable as exc:
        if store.scheme == "sqlite":
            return
        raise StoreProblem(_line(store, exc)) from None
    except StoreError as exc:
        raise StoreProblem(_line(store, exc)) from None


def _line(store: Store, exc: Exception) -> str:
    """One line naming the store (backends' messages already start so)."""
    text = str(exc)
    named = where(store)
    return text if text.startswith("store ") or named in text else f"store {named}: {text}"


def where(store: Store) -> str:
    """How messages name ``store``: its file, or host:port/database."""
    named = getattr(store, "where", None)
    return str(named) if named else describe(getattr(store, "url", ""), None)


def run_on_store(store: Store, work: Callable[[Store], Awaitable[T]]) -> T:
    """``work(store)`` in a fresh event loop, the store closed afterwards;
    store errors are :class:`StoreProblem`."""
    async def main() -> T:
        try:
            return await work(store)
        except StoreError as exc:
            raise StoreProblem(_line(store, exc)) from None
        finally:
            await store.close(5.0)

    return asyncio.run(main())


@click.group("db")
def db() -> None:
    """Inspect and migrate the project's store (run history, jobs, schedule claims)."""


def _status_data(store: Store, status: MigrationStatus) -> dict[str, Any]:
    return {"store": where(store), "backend": store.scheme,
            "current": status.current, "latest": status.latest, "pending": list(status.pending)}


def _echo_status(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    pending = ", ".join(map(str, data["pending"])) or "none"
    click.echo(f"store:   {data['store']} ({data['backend']})\n"
               f"schema:  version {data['current']} of {data['latest']}\n"
               f"pending: {pending}")


@db.command("status")
@root_option()
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status_command(root: Path, as_json: bool) -> None:
    """Show the store's schema version and the migrations not applied yet
    (changes nothing)."""
    store = project_store(load_project(project_root(root)))
    status = run_on_store(store, lambda s: s.migration_status())
    if status.current > status.latest:
        raise StoreProblem(f"store {where(store)} has schema "
                           f"version {status.current}, newer than this taskpack knows "
                           f"({status.latest}): upgrade taskpack")
    _echo_status(_status_data(store, status), as_json)


@db.command("migrate")
@root_option()
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def migrate_command(root: Path, as_json: bool) -> None:
    """Apply pending migrations (servers and `taskpack dev` also do this as
    they start; safe to run while they do)."""
    store = project_store(load_project(project_root(root)))

    async def migrate(s: Store) -> tuple[MigrationStatus, MigrationStatus]:
        before = await s.migration_status()
        try:
            after = await s.migrate()
        except StoreUnavailable as exc:
            raise StoreProblem(_line(s, exc)) from None
        return before, after

    before, after = run_on_store(store, migrate)
    data = _status_data(store, after)
    data["applied"] = [v for v in before.pending if v not in after.pending]
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    applied = ", ".join(map(str, data["applied"]))
    click.echo(f"{data['store']}: applied {applied}; schema is at version {after.current}"
               if applied else f"{data['store']}: schema is up to date (version {after.current})")
