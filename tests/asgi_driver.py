"""Driving an ASGI app with real ASGI messages, as a server would, without
a server: for tests of the HTTP core and of the dev server's app."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from typing import Any


async def call(
    app: Any,
    method: str,
    path: str,
    *,
    query: str = "",
    headers: Iterable[tuple[str, str]] = (("host", "127.0.0.1:3000"),),
    body: bytes | list[bytes] = b"",
    client: tuple[str, int] | None = ("127.0.0.1", 50000),
    root_path: str = "",
) -> tuple[int, dict[str, str], Any]:
    """Drive ``app`` with one HTTP request; (status, headers, parsed JSON)."""
    chunks = body if isinstance(body, list) else [body]
    incoming = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if incoming:
            return incoming.pop(0)
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": root_path + path,
        "root_path": root_path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "headers": [(k.encode(), v.encode()) for k, v in headers],
        "client": client,
        "server": ("127.0.0.1", 3000),
    }
    await app(scope, receive, send)
    start, body_message = sent
    assert start["type"] == "http.response.start"
    response_headers = {k.decode(): v.decode() for k, v in start["headers"]}
    assert int(response_headers["content-length"]) == len(body_message["body"])
    return start["status"], response_headers, json.loads(body_message["body"])
