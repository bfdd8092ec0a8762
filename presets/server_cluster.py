"""``server_cluster`` (Nitro's ``node_cluster``): as ``server``, with
``WORKERS`` processes on one port and one scheduler per host (a file lock,
see :mod:`taskpack.cluster`)."""

from __future__ import annotations

from pathlib import Path

from taskpack.builder.project import Project

from . import _self_hosted

name = "server_cluster"
aliases = ("node_cluster", "node-cluster")


def validate(project: Project) -> list[str]:
    return _self_hosted.validate(project)


def emit(project: Project, out: Path) -> None:
    _self_hosted.emit(project, out, "server_cluster/index.py.j2", "index.py")


def next_steps(out: Path) -> list[str]:
    return [_self_hosted.install_step(out),
            f"WORKERS=4 PORT=3000 python {out / 'server' / 'index.py'}"]


def preview(out: Path) -> list[str]:
    return _self_hosted.preview(out, "index.py")
