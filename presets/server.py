"""``server`` (Nitro's ``node_server``): ``<output>/server/index.py`` runs the
bundle under uvicorn, one process, the scheduler in the app's lifespan."""

from __future__ import annotations

from ._self_hosted import SelfHosted, validate

name = "server"
aliases = ("node_server", "node-server")
summary = "a Python server (uvicorn), taskpack's scheduler in-process"

_preset = SelfHosted("server/index.py.j2", "index.py", run="PORT=3000 python {entry}")
emit = _preset.emit
next_steps = _preset.next_steps
preview = _preset.preview

__all__ = ["aliases", "emit", "name", "next_steps", "preview", "summary", "validate"]
