"""``taskpack runs [NAME]``: the run history, read from the store.

The store is the project's, the one ``taskpack task run`` and ``taskpack
dev`` write (see :mod:`taskpack.builder.db`: ``$TASKPACK_DATABASE_URL``,
``[store] url``, else ``.taskpack/store.sqlite`` under ``--root``); or the
SQLite file given with ``--db``, such as a built server's. Reading never
writes: a SQLite file is opened read-only (no WAL switch, no tables
created), and a file that is not a taskpack store is one error line, exit
2. A history file of taskpack 0.1 (``.taskpack/history.sqlite``) reads too.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click

from taskpack.store import RunRecord, Store, StoreError, store_for
from taskpack.store.sqlite import SQLiteStore
from taskpack.store.urls import sqlite_url

from .cli_options import project_root, root_option
from .db import StoreProblem, project_store, run_on_store, where
from .errors import UsageError
from .project import load_project, task_hint


@click.command("runs")
@click.argument("name", required=False)
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True,
              help="How many runs to show, newest first.")
@click.option("--json", "as_json", is_flag=True, help="Print the runs as a JSON array.")
@root_option()
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path),
              help="Read this SQLite store (or 0.1 history file) instead of the project's.")
def runs(name: str | None, limit: int, as_json: bool, root: Path, db: Path | None) -> None:
    """Show recorded runs (of task NAME, or of every task): when, trigger,
    outcome, attempts and time taken."""
    store: Store | None
    if db is not None:
        if not db.is_file():
            raise UsageError("--db", f"{db} does not exist")
        store = read_only(db)
    else:
        store = project_store(load_project(project_root(root)))
        if isinstance(store, SQLiteStore):
            store = read_only(store.path) if store.path.is_file() else None
    records: list[RunRecord] = []
    if store is not None:
        async def read(s: Store) -> list[RunRecord]:
            return (await s.list_runs(task=name, limit=limit)).runs

        try:
            records = run_on_store(store, read)
        except StoreProblem as exc:
            if db is not None:
                raise UsageError("--db", str(exc)) from None
            raise
    named = where(store) if store is not None else "none yet"
    if as_json:
        click.echo(json.dumps([record.to_dict() for record in records], indent=2,
                              ensure_ascii=False))
        return
    if not records:
        if name is not None and db is None:
            check_task_name(root, name)
        click.echo(f"No runs recorded{f' for {name}' if name else ''} ({named}).")
        return
    click.echo(format_table(records))


def read_only(path: Path) -> Store:
    """The SQLite store at ``path``, opened read-only."""
    try:
        return store_for(sqlite_url(path.resolve()) + "?mode=ro", root=path.parent)
    except StoreError as exc:
        raise UsageError("--db", str(exc)) from None


def check_task_name(root: Path, name: str) -> None:
    """:class:`UsageError` (with a "did you mean") when the project at
    ``root`` has no task ``name``. Called only when ``name`` has no recorded
    runs, so the history of a task since removed stays readable."""
    project = load_project(root)
    if name not in project.task_names:
        raise UsageError("NAME", f"unknown task {name!r}{task_hint(name, project.task_names)}")


def format_table(records: list[RunRecord]) -> str:
    """Runs as aligned columns: started (UTC), task, trigger, outcome,
    attempts, duration, the host that ran it (``hostname:pid``), error."""
    header = ("STARTED (UTC)", "TASK", "TRIGGER", "OUTCOME", "ATTEMPTS", "DURATION", "HOST",
              "ERROR")
    rows = [header] + [
        (
            datetime.fromtimestamp(r.started_at, UTC).strftime("%Y-%m-%d %H:%M:%S"),
            r.task,
            r.trigger,
            r.outcome,
            str(r.attempts),
            format_duration(r.duration_ms),
            r.host or "-",
            " ".join((r.error or "").split()),  # one line per run
        )
        for r in records
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)),
                   row[-1]]).rstrip()
        for row in rows
    )


def format_duration(ms: float) -> str:
    """``12.3ms`` below a second, ``4.56s`` above."""
    return f"{ms:.1f}ms" if ms < 1000 else f"{ms / 1000:.2f}s"
