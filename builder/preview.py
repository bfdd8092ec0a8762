"""``taskpack preview``: run a built bundle as production would.

Reads ``<output>/taskpack.json`` to learn the preset, then replaces this
process with the preset's preview command (for the self-hosted presets:
this interpreter running ``server/index.py`` or ``server/app.py``), so
signals reach the server exactly as they would in production.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from taskpack.presets import get_preset

from .bundle import BUILD_RECORD
from .config import load_config
from .errors import TaskpackError, UsageError


def preview_argv(root: Path, output: Path | None) -> list[str]:
    """The command previewing the build at ``output`` (default: the
    project's ``output_dir``); :class:`TaskpackError` when there is no build
    or its preset cannot be previewed."""
    out = output if output is not None else root / load_config(root).output_dir
    source = "--output" if output is not None else "output_dir"
    record_path = out / BUILD_RECORD
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        preset_name = record["preset"]
    except FileNotFoundError:
        raise UsageError(source, f"no build in {out}; run `taskpack build` first") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(source, f"{record_path} is not a taskpack build record: {exc}") from None
    preset = get_preset(preset_name, source=str(record_path))
    if preset.preview is None:
        raise TaskpackError(f"{out}: preset `{preset.name}` cannot be previewed locally; "
                            "`taskpack build` printed how to deploy it")
    return preset.preview(out)


@click.command("preview")
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="The project folder (for its output_dir).")
@click.option("--output", type=click.Path(file_okay=False, path_type=Path),
              help="The build to run (default: the project's output_dir).")
def preview_command(root: Path, output: Path | None) -> None:
    """Run the built server bundle as production would."""
    argv = preview_argv(root, output)
    click.echo(f"$ {' '.join(argv)}", err=True)
    os.execv(argv[0], argv)
