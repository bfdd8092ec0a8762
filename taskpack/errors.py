"""The runtime's exception hierarchy.

Every error a caller of :func:`taskpack.run_task` can see because of the task
*system* (as opposed to an exception raised by the task's own code, which
propagates unchanged) is a :class:`TaskError`. Each one carries the HTTP
status the task API answers with, so the HTTP core, the CLI and the platform
entry points map errors the same way.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from typing import Any


class TaskError(Exception):
    """Base class: a task could not be run as asked.

    ``status_code`` is the HTTP status the task API answers with and
    ``message`` the text it shows; both are plain data so a handler can
    render the error without knowing its class.
    """

    status_code: int = 500

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code

    def details(self) -> dict[str, Any]:
        """Extra fields for the HTTP error body (beside ``message``); none by default."""
        return {}


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """A hint for a mistyped name: `` Did you mean `x`?`` with the closest
    of ``known`` (difflib's ratio, cut-off 0.6), else ``""``."""
    close = difflib.get_close_matches(word, list(known), n=1)
    return f" Did you mean `{close[0]}`?" if close else ""


class TaskNotFoundError(TaskError):
    """No task of that name is registered (HTTP 404).

    The message is Nitro's (``Task `x` is not available!``), followed by a
    "did you mean" hint when one of ``known`` (the registered names) is close.
    """

    status_code = 404

    def __init__(self, name: str, known: Iterable[str] = ()) -> None:
        super().__init__(f"Task `{name}` is not available!{did_you_mean(name, known)}")
        self.name = name


class TaskNotImplementedError(TaskError):
    """The task is listed (e.g. in config) but has no handler (HTTP 501)."""

    status_code = 501

    def __init__(self, name: str) -> None:
        super().__init__(f"Task `{name}` is not implemented!")
        self.name = name


class TaskLoadError(TaskError):
    """The task's handler could not be imported or does not define one task.

    ``handler`` is the handler location as written in the manifest
    (``tasks/db/migrate.py`` or ``pkg.module:attr``).
    """

    status_code = 500

    def __init__(self, name: str, handler: str, reason: str) -> None:
        super().__init__(f"Task `{name}`: cannot load handler {handler}: {reason}")
        self.name = name
        self.handler = handler
        self.reason = reason


class PayloadValidationError(TaskError):
    """The payload does not match the task's ``payload_schema`` (HTTP 422).

    Raised before any attempt runs. ``errors`` lists what is wrong, one
    ``{"field": "a.b" | None, "message": str, "type": str}`` per problem
    (``field`` is ``None`` when the problem is not tied to one field).
    """

    status_code = 422

    def __init__(self, name: str, errors: Sequence[dict[str, Any]]) -> None:
        self.name = name
        self.errors = [dict(error) for error in errors]
        summary = "; ".join(
            f"{e['field']}: {e['message']}" if e.get("field") else str(e["message"])
            for e in self.errors
        )
        super().__init__(f"Task `{name}`: invalid payload: {summary or 'rejected'}")

    def details(self) -> dict[str, Any]:
        return {"errors": self.errors}


class TaskTimeoutError(TaskError):
    """An attempt of the task ran longer than its ``timeout`` (HTTP 504).

    An async task is cancelled; a sync task's worker thread cannot be
    killed, so it runs on unobserved while the caller gets this error.
    """

    status_code = 504

    def __init__(self, name: str, timeout: float, attempt: int) -> None:
        super().__init__(f"Task `{name}` timed out after {timeout:g}s (attempt {attempt})")
        self.name = name
        self.timeout = timeout
        self.attempt = attempt


class NonRetryableError(Exception):
    """Raise it from a task to fail the run at once, whatever its retry policy.

    Callers receive this exception itself; chain the real cause with
    ``raise NonRetryableError("...") from exc``.
    """


class TaskAbortedError(NonRetryableError):
    """The task raised an exception that is not an :class:`Exception`
    (``SystemExit``, ``KeyboardInterrupt``, ``GeneratorExit``, ...).

    Such an exception ends the run, never the process: the runtime replaces
    it with this error (not retried), whose ``original`` (also
    ``__cause__``) is what the task raised; the run history and the HTTP
    API report the original (``"SystemExit: 3"``). Cancellation
    (``asyncio.CancelledError``) is not an abort and passes unchanged.
    """

    def __init__(self, original: BaseException) -> None:
        text = str(original)
        name = type(original).__name__
        super().__init__(f"{name}: {text}" if text else name)
        self.original = original
