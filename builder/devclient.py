"""The CLI's side of ``taskpack dev``: ``task list`` and ``task run`` sent to
the running dev server over its task API.

Answers come back as the same data the in-process path produces (the
listing dict, the task's result, or a :class:`taskpack.TaskError` carrying
the server's status and message), so the CLI prints both paths the same
way.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote

from taskpack import TaskError

from .devstate import LOCAL_OPENER, DevState
from .errors import TaskpackError


class DevServerGone(Exception):
    """The dev server refused the connection: the request never reached it,
    so the caller may run in-process instead."""


class DevServerError(TaskError):
    """The dev server answered a run with an error; ``exception`` is the
    exception class the task raised, when the server says (dev mode does),
    and ``traceback`` the server-side traceback."""

    def __init__(self, status: int, message: str, exception: str | None,
                 traceback: str | None) -> None:
        super().__init__(message, status_code=status)
        self.exception = exception
        self.traceback = traceback


def fetch_listing(server: DevState) -> dict[str, Any]:
    """``GET /_nitro/tasks``. :class:`DevServerGone` if it refuses the
    connection; :class:`TaskpackError` if the exchange breaks off."""
    data: dict[str, Any] = _request(server, "GET", "/_nitro/tasks", None)
    return data


def run_remote(server: DevState, name: str, payload: dict[str, Any]) -> Any:
    """``POST /_nitro/tasks/{name}`` with ``{"payload": payload}``; the result,
    or :class:`DevServerError` (and as :func:`fetch_listing`). A run cut off
    midway is not retried: it may have happened."""
    body = json.dumps({"payload": payload}, ensure_ascii=False).encode("utf-8")
    return _request(server, "POST", "/_nitro/tasks/" + quote(name, safe=":"), body)


def _request(server: DevState, method: str, path: str, body: bytes | None) -> Any:
    request = urllib.request.Request(
        server.base_url + path, data=body, method=method,
        headers={"content-type": "application/json", "accept": "application/json"},
    )
    try:
        with LOCAL_OPENER.open(request, timeout=None) as response:
            return json.loads(response.read())
    except ConnectionRefusedError:
        raise DevServerGone from None
    except urllib.error.HTTPError as exc:
        with exc:
            text = exc.read()
        try:
            error = json.loads(text)
            message = str(error["message"])
        except (ValueError, KeyError, TypeError):
            raise DevServerError(exc.code, f"dev server answered {exc.code}: {text[:200]!r}",
                                 None, None) from None
        raise DevServerError(exc.code, message, error.get("exception"),
                             error.get("traceback")) from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ConnectionRefusedError):
            raise DevServerGone from None
        raise TaskpackError(f"the dev server at {server.base_url} did not answer: "
                            f"{exc.reason}") from None
    except (OSError, ValueError) as exc:
        raise TaskpackError(f"the dev server at {server.base_url} did not answer: "
                            f"{exc}") from None
