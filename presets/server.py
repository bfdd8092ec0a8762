"""``server`` (Nitro's ``node_server``): ``<output>/server/index.py`` runs the
bundle under uvicorn, one process, the scheduler in the app's lifespan."""

from __future__ import annotations

from pathlib import Path

from taskpack.builder.project import Project

from . import _self_hosted

name = "server"
aliases = ("node_server", "node-server")


def validate(project: Project) -> list[str]:
    return _self_hosted.validate(project)


def emit(project: Project, out: Path) -> None:
    _self_hosted.emit(project, out, "server/index.py.j2", "index.py")


def next_steps(out: Path) -> list[str]:
    return [_self_hosted.install_step(out),
            f"PORT=3000 python {out / 'server' / 'index.py'}"]


def preview(out: Path) -> list[str]:
    return _self_hosted.preview(out, "index.py")
