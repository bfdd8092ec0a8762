"""``taskpack init [DIR]``: scaffold a project a newcomer can run at once.

Writes a task with a docstring (``tasks/hello.py``), a ``taskpack.toml``
whose schedule and options are there commented out, and ``.gitignore``
entries for the folders taskpack writes (``.taskpack/``, ``.output/``).
It refuses, writing nothing, in a folder that already has a taskpack config
or a ``tasks/`` folder; an existing ``.gitignore`` only gains the missing
entries.
"""

from __future__ import annotations

from pathlib import Path

import click

from .config import find_config
from .errors import ConfigError, UsageError

TASK = '''"""Say hello to someone.

The task `hello` (its file's path is its name). The first line of this
docstring is its description in `taskpack task list`. Run it with:

    taskpack task run hello --payload '{"name": "Ada"}'
"""

from taskpack import define_task


@define_task
async def run(event):                   # a plain `def` works too (it runs in a thread)
    name = event.payload.get("name", "world")
    print(f"Hello, {name}!")            # shows on stderr; the return value is the result
    return {"greeting": f"Hello, {name}!"}
'''

CONFIG = '''# taskpack config. Every key is optional; unknown keys are an error.
# Reference: docs/config.md in taskpack's documentation.

# preset = "server"         # default of `taskpack build`: server, server_cluster,
#                           # asgi, cloudflare_module, vercel
# timezone = "UTC"          # IANA zone of the schedules (server presets only)

# Cron schedules, croner's dialect: cron -> a task name or a list of names.
# `taskpack cron "EXPR"` shows when an expression fires.
[scheduled_tasks]
# "0 * * * *" = "hello"     # every hour, on the hour

# Options of one task (they can also be given to define_task(...)).
# [tasks."hello"]
# retries = 3               # retries after a failed attempt, with backoff
# timeout = 30              # seconds per attempt
# concurrency = "dedupe"    # dedupe, dedupe_payload, serial or parallel

# Built servers: the task API (/_nitro/tasks) is off unless enabled, and
# then needs the token in $TASKPACK_TASKS_TOKEN.
# [server]
# tasks_api = true
'''

IGNORED = (".taskpack/", ".output/")


@click.command("init")
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
def init_command(directory: Path) -> None:
    """Create a project in DIRECTORY (default: here): a task, a commented
    taskpack.toml and .gitignore entries."""
    written = scaffold(directory)
    click.echo(f"Created a taskpack project in {directory}: {', '.join(written)}")
    cd = "" if directory == Path(".") else f"cd {directory} && "
    click.echo(f"Next: {cd}taskpack task list && taskpack task run hello")


def scaffold(root: Path) -> list[str]:
    """Write the project into ``root`` (created if missing); the files
    written or changed, root-relative. :class:`UsageError` (nothing written)
    when ``root`` already holds a taskpack project."""
    if root.exists() and not root.is_dir():
        raise UsageError("DIRECTORY", f"{root} is not a folder")
    if root.is_dir():
        try:
            found = find_config(root)
        except ConfigError as exc:
            raise UsageError("DIRECTORY", f"{root} already has a taskpack config "
                             f"({exc.message}); nothing written") from None
        if found is not None:
            raise UsageError("DIRECTORY", f"{root} already has a taskpack config "
                             f"({found[1]}); nothing written")
        if (root / "tasks").exists():
            raise UsageError("DIRECTORY", f"{root} already has a tasks/ folder; nothing written")
    (root / "tasks").mkdir(parents=True)
    (root / "tasks" / "hello.py").write_text(TASK, encoding="utf-8")
    (root / "taskpack.toml").write_text(CONFIG, encoding="utf-8")
    written = ["tasks/hello.py", "taskpack.toml"]
    if add_ignores(root / ".gitignore"):
        written.append(".gitignore")
    return written


def add_ignores(path: Path) -> bool:
    """Append the entries of :data:`IGNORED` that ``path`` lacks; whether it changed."""
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    present = {line.strip().strip("/") for line in text.splitlines()}
    missing = [entry for entry in IGNORED if entry.strip("/") not in present]
    if not missing:
        return False
    if text and not text.endswith("\n"):
        text += "\n"
    path.write_text(text + "# written by taskpack\n" + "".join(f"{e}\n" for e in missing),
                    encoding="utf-8")
    return True
