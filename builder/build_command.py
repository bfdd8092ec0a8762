"""The ``taskpack build`` command: runs :func:`builder.build.build` and prints
a summary (tasks, schedules as deployed, output, how to run or deploy it),
or the build record as JSON with ``--json``."""

from __future__ import annotations

import json
import os
import traceback
from pathlib import Path
from typing import Any

import click

from .build import BuildResult, build
from .cli_options import project_root, root_option
from .errors import TaskpackError


class BuildCommand(click.Command):
    """``taskpack build``: its help ends with every preset, its summary and
    aliases (listed when the help is shown, so other commands never load
    the presets)."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        from taskpack.presets import known_presets

        rows = []
        for preset in known_presets():
            aliases = f" (alias {', '.join(preset.aliases)})" if preset.aliases else ""
            rows.append((preset.name, f"{preset.summary}{aliases}"))
        with formatter.section("Presets"):
            formatter.write_dl(rows)


@click.command("build", cls=BuildCommand)
@click.option("--preset", help="The preset (default: $TASKPACK_PRESET, config `preset`, server).")
@root_option()
@click.option("--output", type=click.Path(path_type=Path),
              help="The output folder (default: config `output_dir`, .output).")
@click.option("--json", "as_json", is_flag=True, help="Print the build record as JSON.")
@click.pass_context
def build_command(ctx: click.Context, preset: str | None, root: Path, output: Path | None,
                  as_json: bool) -> None:
    """Build the project into a deploy bundle for a preset."""
    try:
        result = build(project_root(root), preset=preset, output=output)
    except TaskpackError:
        raise
    except Exception as exc:
        if ctx.meta.get("taskpack.debug"):
            traceback.print_exception(exc)
        else:
            click.echo(f"error: internal error while building: {type(exc).__name__}: {exc} "
                       "(run `taskpack --debug build` for the traceback)", err=True)
        ctx.exit(1)
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    steps = result.preset.next_steps(result.project, display_path(result.output))
    if as_json:
        data: dict[str, Any] = {**result.record, "output": str(result.output),
                                "next_steps": steps, "warnings": list(result.warnings)}
        click.echo(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False))
        return
    echo_summary(result, steps)


def display_path(path: Path) -> Path:
    """``path`` relative to the working directory when it is below it."""
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


def echo_summary(result: BuildResult, steps: list[str]) -> None:
    """The human summary of a build."""
    record = result.record
    tasks: dict[str, dict[str, Any]] = record["tasks"]
    click.echo(f"Built {len(tasks)} task(s) with preset `{result.preset.name}` "
               f"into {display_path(result.output)}{os.sep} ({len(record['files'])} files)")
    if tasks:
        click.echo("\nTasks:")
        width = max(map(len, tasks))
        for name, info in tasks.items():
            click.echo(f"  {name:<{width}}  {info['description']}".rstrip())
    schedules: list[dict[str, Any]] = record["schedules"]
    if schedules:
        click.echo("\nSchedules:")
        width = max(len(s["cron"]) for s in schedules)
        for entry in schedules:
            line = f"  {entry['cron']:<{width}}  {', '.join(entry['tasks'])}"
            if entry["written"] != [entry["cron"]]:
                line += f"  (written {', '.join(map(repr, entry['written']))})"
            click.echo(line)
    if steps:
        click.echo("\nNext:")
        for step in steps:
            click.echo(f"  {step}")
