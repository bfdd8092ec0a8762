"""``taskpack runs [NAME]``: the run history, read from the SQLite store.

The store is the one ``taskpack task run`` and ``taskpack dev`` write:
``[server] history_path`` (default ``.taskpack/history.sqlite``) under
``--root``; or the file given with ``--db``, such as a built server's
(``$TASKPACK_HISTORY_PATH``, else ``history_path`` relative to the
directory the server was started in; see :func:`taskpack.server.history_file`).
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import click

from taskpack.history import DEFAULT_PATH, RunRecord
from taskpack.history_sqlite import SQLiteHistory

from .cli_options import project_root, root_option
from .config import load_config
from .errors import UsageError
from .project import load_project, task_hint


@click.command("runs")
@click.argument("name", required=False)
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True,
              help="How many runs to show, newest first.")
@click.option("--json", "as_json", is_flag=True, help="Print the runs as a JSON array.")
@root_option()
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path),
              help="Read this history file instead of the project's.")
def runs(name: str | None, limit: int, as_json: bool, root: Path, db: Path | None) -> None:
    """Show recorded runs (of task NAME, or of every task): when, trigger,
    outcome, attempts and time taken."""
    path = db if db is not None else history_file(root)
    if not path.is_file():
        if db is not None:
            raise UsageError("--db", f"{db} does not exist")
        records: list[RunRecord] = []
    else:
        store = SQLiteHistory(path)
        try:
            records = store.runs(name, limit)
        except sqlite3.DatabaseError as exc:
            raise UsageError("--db" if db is not None else "server.history_path",
                             f"cannot read {path} as a run history: {exc}") from None
        finally:
            store.close()
    if as_json:
        click.echo(json.dumps([record.to_dict() for record in records], indent=2,
                              ensure_ascii=False))
        return
    if not records:
        if name is not None and db is None:
            check_task_name(root, name)
        click.echo(f"No runs recorded{f' for {name}' if name else ''} ({path}).")
        return
    click.echo(format_table(records))


def check_task_name(root: Path, name: str) -> None:
    """:class:`UsageError` (with a "did you mean") when the project at
    ``root`` has no task ``name``. Called only when ``name`` has no recorded
    runs, so the history of a task since removed stays readable."""
    project = load_project(root)
    if name not in project.task_names:
        raise UsageError("NAME", f"unknown task {name!r}{task_hint(name, project.task_names)}")


def history_file(root: Path) -> Path:
    """The project's history file: ``[server] history_path`` under ``root``."""
    server = load_config(project_root(root)).preset_options.get("server", {})
    return root / str(server.get("history_path", DEFAULT_PATH))


def format_table(records: list[RunRecord]) -> str:
    """Runs as aligned columns: started (UTC), task, trigger, outcome,
    attempts, duration, error."""
    header = ("STARTED (UTC)", "TASK", "TRIGGER", "OUTCOME", "ATTEMPTS", "DURATION", "ERROR")
    rows = [header] + [
        (
            datetime.fromtimestamp(r.started_at, UTC).strftime("%Y-%m-%d %H:%M:%S"),
            r.task,
            r.trigger,
            r.outcome,
            str(r.attempts),
            format_duration(r.duration_ms),
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
