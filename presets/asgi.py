"""``asgi`` (Nitro's ``node_middleware``): ``<output>/server/app.py`` exposes
the bundle as an ASGI ``app`` for any ASGI server, plus ``tasks_app`` and
``lifespan`` to mount it in a FastAPI or Starlette application."""

from __future__ import annotations

from ._self_hosted import ASGI_REQUIREMENTS, SelfHosted, validate

name = "asgi"
aliases = ("node_middleware", "node-middleware")
summary = "an ASGI app (app.py) for uvicorn, hypercorn, granian or a FastAPI mount"

_preset = SelfHosted("asgi/app.py.j2", "app.py",
                     run="uvicorn app:app --app-dir {bundle} --port 3000",
                     requirements=ASGI_REQUIREMENTS)
emit = _preset.emit
next_steps = _preset.next_steps
preview = _preset.preview

__all__ = ["aliases", "emit", "name", "next_steps", "preview", "summary", "validate"]
