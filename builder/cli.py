"""The ``taskpack`` command line.

``taskpack`` alone prints the help (exit 0); ``-h`` is ``--help`` on every
command. Every command reports bad input as one line on stderr (``error: ...``) and
exits 2; a task that fails exits 1; ``--debug`` shows tracebacks instead.
Every command lives in its own module and is imported only when it runs
(``taskpack build`` does not pay for the dev server's or the task runner's
imports); :data:`COMMANDS` lists them.
"""

from __future__ import annotations

import importlib
from typing import Any, NoReturn

import click

from taskpack import __version__

from .errors import TaskpackError

# Command name -> "module:attribute" (modules relative to this package).
COMMANDS = {
    "build": "build_command:build_command",
    "cron": "cron_command:cron",
    "db": "db:db",
    "dev": "dev:dev_command",
    "enqueue": "queue_command:enqueue_command",
    "jobs": "queue_command:jobs",
    "init": "init_command:init_command",
    "preview": "preview:preview_command",
    "runs": "runs:runs",
    "task": "task_command:task",
    "worker": "queue_command:worker_command",
}


class TaskpackGroup(click.Group):
    """Loads the commands of :data:`COMMANDS` on first use, and reports
    :class:`TaskpackError` as ``error: <line>`` on stderr and exits with its
    code (with ``--debug``, the traceback instead); click's usage errors,
    of ``taskpack``'s own options or of a command's, are one ``error:``
    line too, exit 2."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in COMMANDS:
            module, _, attr = COMMANDS[cmd_name].partition(":")
            command = getattr(importlib.import_module(f".{module}", __package__), attr)
            if not isinstance(command, click.Command):
                raise RuntimeError(f"{COMMANDS[cmd_name]} is not a click command")
            self.add_command(command, cmd_name)
        return command

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:  # `taskpack --bogus`: before any command
            _usage_error(ctx, exc)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TaskpackError as exc:
            if ctx.meta.get("taskpack.debug"):
                raise
            click.echo(f"error: {exc.format_message()}", err=True)
            ctx.exit(exc.exit_code)
        except click.exceptions.NoArgsIsHelpError as exc:
            # A group called without its command (`taskpack task`): its help, exit 0.
            click.echo((exc.ctx or ctx).get_help())
            ctx.exit(0)
        except click.UsageError as exc:
            _usage_error(ctx, exc)


def _usage_error(ctx: click.Context, exc: click.UsageError) -> NoReturn:
    """click's own bad-argument errors, as one line like ours."""
    command = exc.ctx.command_path if exc.ctx is not None else ctx.command_path
    click.echo(f"error: {exc.format_message()} (see `{command} --help`)", err=True)
    ctx.exit(exc.exit_code)


@click.group(cls=TaskpackGroup, invoke_without_command=True,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="taskpack")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Nitro-style tasks for Python, compiled into deploy bundles.

    Start with `taskpack init` in an empty folder."""
    ctx.meta["taskpack.debug"] = debug
    if ctx.invoked_subcommand is None:  # `taskpack` alone: the help, exit 0
        click.echo(ctx.get_help())
