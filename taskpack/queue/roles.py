"""What a server process does: ``TASKPACK_ROLE=web|worker|all``.

* ``all`` (the default): the web part (task API, job API, dashboard,
  ``/_health``) and a worker in one process;
* ``web``: the web part only; it enqueues jobs but runs none;
* ``worker``: a worker and ``/_health`` only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

Role = Literal["web", "worker", "all"]
ROLES: tuple[Role, ...] = ("web", "worker", "all")
ROLE_ENV = "TASKPACK_ROLE"


class RoleError(ValueError):
    """``TASKPACK_ROLE`` holds something else; ``str()`` is one line."""


def role_from_env(env: Mapping[str, str]) -> Role:
    """The process's role (default ``all``); :class:`RoleError` for another value."""
    text = env.get(ROLE_ENV, "").strip().lower() or "all"
    for role in ROLES:
        if text == role:
            return role
    raise RoleError(f"{ROLE_ENV}: expected one of web, worker, all, got {env[ROLE_ENV]!r}")


def runs_worker(role: Role) -> bool:
    return role in ("worker", "all")


def serves_web(role: Role) -> bool:
    return role in ("web", "all")
