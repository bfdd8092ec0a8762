"""What the commands share on their command line: the ``--root`` option and
its check."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from .errors import UsageError

F = TypeVar("F", bound=Callable[..., Any])


def root_option(help: str = "The project folder.") -> Callable[[F], F]:
    """``--root DIR`` (default ``.``), passed to the command as a :class:`Path`."""
    return click.option("--root", type=click.Path(file_okay=False, path_type=Path),
                        default=Path("."), show_default=True, help=help)


def project_root(root: Path) -> Path:
    """``root`` if it is a folder, else :class:`UsageError` naming ``--root``."""
    if not root.is_dir():
        raise UsageError("--root", f"{root} is not a folder")
    return root
