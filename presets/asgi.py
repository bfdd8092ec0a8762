"""``asgi`` (Nitro's ``node_middleware``): ``<output>/server/app.py`` exposes
the bundle as an ASGI ``app`` for any ASGI server, plus ``tasks_app`` and
``lifespan`` to mount it in a FastAPI or Starlette application."""

from __future__ import annotations

from pathlib import Path

from taskpack.builder.project import Project

from . import _self_hosted

name = "asgi"
aliases = ("node_middleware", "node-middleware")


def validate(project: Project) -> list[str]:
    return _self_hosted.validate(project)


def emit(project: Project, out: Path) -> None:
    _self_hosted.emit(project, out, "asgi/app.py.j2", "app.py")


def next_steps(out: Path) -> list[str]:
    return [_self_hosted.install_step(out),
            f"uvicorn app:app --app-dir {out / 'server'} --port 3000"]


def preview(out: Path) -> list[str]:
    return _self_hosted.preview(out, "app.py")
