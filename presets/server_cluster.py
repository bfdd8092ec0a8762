"""``server_cluster`` (Nitro's ``node_cluster``): as ``server``, with
``WORKERS`` processes on one port, each claiming fires in the store (see
:mod:`taskpack.cluster`)."""

from __future__ import annotations

from ._self_hosted import SelfHosted, validate

name = "server_cluster"
aliases = ("node_cluster", "node-cluster")
summary = "as server, N worker processes on one port, one scheduler per host"

_preset = SelfHosted("server_cluster/index.py.j2", "index.py",
                     run="WORKERS=4 PORT=3000 python {entry}")
emit = _preset.emit
next_steps = _preset.next_steps
preview = _preset.preview

__all__ = ["aliases", "emit", "name", "next_steps", "preview", "summary", "validate"]
