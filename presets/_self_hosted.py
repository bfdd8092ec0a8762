"""What the self-hosted presets (``server``, ``server_cluster``, ``asgi``)
share: validation, the ``[server]`` options, the bundle under
``<output>/server``, the next steps and the preview command.

Each of those presets is the same bundle with a different entry file
rendered from its template folder, so a preset module only declares a
:class:`SelfHosted` (template, entry, how to run it) and binds its
functions. The server logic itself lives in the runtime
(:mod:`taskpack.server`, :mod:`taskpack.cluster`), so the entry files stay a
few lines long.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

from taskpack.builder.bundle import compile_runtime, render, write_bundle
from taskpack.builder.errors import TaskpackError
from taskpack.builder.project import Project

BUNDLE_DIR = "server"
SERVER_REQUIREMENTS = ("httptools", "uvloop")
"""``server``/``server_cluster``: the bundle serves itself (taskpack's HTTP/1.1
server on uvloop and httptools, see :mod:`taskpack.serving`), versions pinned
in taskpack's ``server`` extra."""
ASGI_REQUIREMENTS = ("uvicorn",)
"""``asgi``: no server is needed by ``app.py``; uvicorn is the one its run
command uses (hypercorn or granian serve it as well)."""
DEFAULT_GRACE = 30.0


def validate(project: Project) -> list[str]:
    """taskpack's own scheduler runs every schedule the project loads with
    (any time zone, seconds allowed; :func:`load_project` already refused
    what the cron dialect does not accept). Refused: ``[server] dashboard``
    without ``tasks_api`` (the task API's token guards the dashboard)."""
    options = project.preset_options("server")
    if options.get("dashboard", False) and not options.get("tasks_api", False):
        raise project.config.error("the dashboard is served behind the task API's token: "
                                   "set [server] tasks_api = true too", "server", "dashboard")
    return []


@dataclass(frozen=True)
class SelfHosted:
    """One self-hosted preset: ``template`` renders the ``entry`` file of the
    bundle; ``run`` is the shell command serving it, with ``{bundle}`` (the
    bundle folder) and ``{entry}`` (the entry file) filled in."""

    template: str
    entry: str
    run: str
    requirements: tuple[str, ...] = SERVER_REQUIREMENTS

    def emit(self, project: Project, out: Path) -> None:
        """The bundle in ``out/server`` with the entry file rendered."""
        base = out / BUNDLE_DIR
        options = project.preset_options("server")
        write_bundle(project, base, requirements=self.requirements,
                     web=bool(options.get("dashboard", False)))
        compile_runtime(base)  # a start where bytecode cannot be written compiles nothing
        render(self.template, base / self.entry,
               tasks_api=repr(bool(options.get("tasks_api", False))),
               shutdown_grace=repr(float(options.get("shutdown_grace", DEFAULT_GRACE))),
               dashboard=repr(bool(options.get("dashboard", False))))

    def next_steps(self, project: Project, out: Path) -> list[str]:
        """Install the requirements, then serve (with the token the server
        refuses to start without when the task API is on)."""
        base = out / BUNDLE_DIR
        run = self.run.format(bundle=base, entry=base / self.entry)
        if project.preset_options("server").get("tasks_api", False):
            run = f"TASKPACK_TASKS_TOKEN=change-me {run}"
        return [self.install_step(out), run]

    def install_step(self, out: Path) -> str:
        """Installing the bundle's requirements."""
        return f"pip install -r {out / BUNDLE_DIR / 'requirements.txt'}"

    def preview(self, out: Path) -> list[str]:
        """``taskpack preview``: this interpreter running the entry file, as
        production does; it needs the bundle's requirements installed."""
        missing = [name for name in self.requirements if importlib.util.find_spec(name) is None]
        if missing:
            raise TaskpackError(f"{', '.join(missing)} not installed in {sys.executable}; "
                                f"run `{self.install_step(out)}` first")
        return [sys.executable, str(out / BUNDLE_DIR / self.entry)]
