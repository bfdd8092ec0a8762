"""Preset ``cloudflare_pages``: accepted as a name, refused as a target.

Cloudflare Pages cannot run cron triggers (``wrangler pages deploy`` fails
with *Configuration file for Pages projects does not support "triggers"*)
and has no Python runtime, so there is no output that would work. The build
stops with exit code 2 and points to ``cloudflare_module`` (a Python Worker
with Cron Triggers) instead of writing something half-working.
"""

from __future__ import annotations

from pathlib import Path

from taskpack.builder.dialects import CLOUDFLARE_PAGES
from taskpack.builder.errors import TaskpackError
from taskpack.builder.project import Project

name = "cloudflare_pages"
aliases = ("cloudflare-pages",)
summary = "refused: Pages has no cron triggers (use cloudflare_module)"
cron_platform = CLOUDFLARE_PAGES

REASON = (
    "preset cloudflare_pages cannot work: Cloudflare Pages has no cron triggers "
    '(wrangler pages deploy rejects "triggers") and no Python runtime; '
    "use --preset cloudflare_module (a Python Worker with Cron Triggers)"
)


class PagesUnsupportedError(TaskpackError):
    """The ``cloudflare_pages`` preset was chosen (exit code 2)."""

    def __init__(self) -> None:
        super().__init__(REASON)


def validate(project: Project) -> list[str]:
    raise PagesUnsupportedError


def emit(project: Project, out: Path) -> None:
    raise PagesUnsupportedError
