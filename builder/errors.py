"""Errors the build side reports to a user.

Each knows its exit code and renders as one line, Click-style; the CLI
prints ``error: <line>`` and exits with ``exit_code`` (tracebacks only with
``--debug``).
"""

from __future__ import annotations


class TaskpackError(Exception):
    """Base class: bad input from the user (exit code 2)."""

    exit_code = 2

    def format_message(self) -> str:
        return str(self)


class TaskFailedError(TaskpackError):
    """A task ran and failed (exit code 1)."""

    exit_code = 1


class ConfigError(TaskpackError):
    """Something in the project is wrong; names the file and the key.

    ``file`` is shown as given (normally relative to the project root, with
    ``:line`` for source files); ``key`` is a dotted TOML-style key path
    such as ``scheduled_tasks."0 * * * *"``, or ``None`` when the whole
    file is at fault.
    """

    def __init__(self, file: str, key: str | None, message: str) -> None:
        self.file = file
        self.key = key
        self.message = message
        super().__init__(f"{file}: {key}: {message}" if key else f"{file}: {message}")


class UsageError(TaskpackError):
    """A command-line argument is wrong; ``param`` names it (``--payload``)."""

    def __init__(self, param: str, message: str) -> None:
        self.param = param
        self.message = message
        super().__init__(f"{param}: {message}")


def key_path(*parts: str) -> str:
    """A dotted key path, quoting parts that are not bare TOML keys:
    ``key_path("scheduled_tasks", "0 * * * *")`` is ``scheduled_tasks."0 * * * *"``."""
    return ".".join(part if _is_bare(part) else _quote(part) for part in parts)


def _is_bare(part: str) -> bool:
    return bool(part) and all(ch.isascii() and (ch.isalnum() or ch in "_-") for ch in part)


def _quote(part: str) -> str:
    return '"' + part.replace("\\", "\\\\").replace('"', '\\"') + '"'
