"""``taskpack preview``: run a built bundle as production would.

Reads ``<output>/taskpack.json`` to learn the preset, then replaces this
process with the preset's preview command (for the self-hosted presets:
this interpreter running ``server/index.py`` or ``server/app.py``), so
signals reach the server exactly as they would in production.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import click

from taskpack.presets import get_preset

from .bundle import BUILD_RECORD
from .cli_options import root_option
from .config import load_config
from .errors import TaskpackError, UsageError

LOOPBACK = "127.0.0.1"


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
        readme = out / "README.md"
        how = (f"{readme} says how to deploy and test it" if readme.is_file()
               else "`taskpack build` printed how to deploy it")
        raise TaskpackError(f"{out}: preset `{preset.name}` cannot be previewed locally; {how}")
    return preset.preview(out)


def preview_env(env: Mapping[str, str], host: str | None, port: int | None) -> dict[str, str]:
    """The server's environment: ``--host``/``--port`` when given (as
    ``TASKPACK_HOST``/``TASKPACK_PORT``, which win over ``HOST``/``PORT``);
    without ``--host`` and without a host in the environment, 127.0.0.1
    (a preview is for this machine; production's default is 0.0.0.0)."""
    result = dict(env)
    if host is not None:
        result["TASKPACK_HOST"] = host
    elif "TASKPACK_HOST" not in env and "HOST" not in env:
        result["TASKPACK_HOST"] = LOOPBACK
    if port is not None:
        result["TASKPACK_PORT"] = str(port)
    return result


@click.command("preview")
@root_option("The project folder (for its output_dir).")
@click.option("--output", type=click.Path(file_okay=False, path_type=Path),
              help="The build to run (default: the project's output_dir).")
@click.option("--host", help=f"Address to listen on [default: $HOST, else {LOOPBACK}].")
@click.option("--port", type=click.IntRange(0, 65535),
              help="Port to listen on [default: $PORT, else 3000].")
def preview_command(root: Path, output: Path | None, host: str | None,
                    port: int | None) -> None:
    """Run the built server bundle as production would (on 127.0.0.1 unless
    --host or $HOST says otherwise)."""
    argv = preview_argv(root, output)
    env = preview_env(os.environ, host, port)
    click.echo(f"$ {' '.join(argv)}  (on {env.get('TASKPACK_HOST') or env.get('HOST')}"
               f":{env.get('TASKPACK_PORT') or env.get('PORT') or 3000})", err=True)
    os.execve(argv[0], argv, env)
