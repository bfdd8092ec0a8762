"""``GET /_taskpack/api/events``: new runs and job changes as server-sent events.

Events (``data`` is JSON):

* ``hello`` — ``{"poll": seconds}`` once, when the stream opens;
* ``run`` — a finished run (a run record);
* ``job`` — a job this process changed (a job record, from
  :func:`taskpack.events.on_job_changed`);
* ``jobs`` — the job counts per status, whenever they change.

Two sources feed the stream, so nothing is missed and nothing waits long:
runs and job changes of this process arrive at once through
:mod:`taskpack.events`; runs and jobs of other processes (cluster workers,
other hosts on a shared store, the CLI) are found by reading the newest
runs and the job counts every ``poll_interval`` seconds. A run is sent
once per stream (ids already sent are remembered). A comment line every
:data:`KEEPALIVE` seconds keeps proxies from closing an idle stream; the
stream ends when the client goes away, when the dashboard is closed
(server shutdown), or after :data:`MAX_AGE` seconds (the page reconnects).

The page reads it with ``fetch()`` rather than ``EventSource``, so the
bearer token stays a header.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from .. import events
from ..http import Receive, Send
from ..store import RunPage, StoreError
from .app import PAGE_HEADERS, Router, WebRequest

logger = logging.getLogger(__name__)

KEEPALIVE = 15.0
MAX_AGE = 300.0
SEEN = 2000
"""Run ids remembered per stream."""
POLL_RUNS = 50


def add_routes(router: Router) -> None:
    router.add_stream("events", stream)


def sse(event: str, data: Any) -> bytes:
    """One server-sent event."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"event: {event}\ndata: {text}\n\n".encode()


async def stream(request: WebRequest, receive: Receive, send: Send) -> None:
    dashboard = request.dashboard
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue(maxsize=1000)

    def push(kind: str, record: Any) -> None:
        def put() -> None:
            with contextlib.suppress(asyncio.QueueFull):  # the poll catches up
                queue.put_nowait((kind, record.to_dict()))
        loop.call_soon_threadsafe(put)

    unsubscribe: list[Callable[[], None]] = [
        events.on_run_finished(lambda run: push("run", run)),
        events.on_job_changed(lambda job: push("job", job))]
    gone = asyncio.Event()

    async def watch_disconnect() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        gone.set()

    watcher = asyncio.create_task(watch_disconnect())
    seen: OrderedDict[str, None] = OrderedDict()

    def fresh(run: dict[str, Any]) -> bool:
        if run["id"] in seen:
            return False
        seen[run["id"]] = None
        while len(seen) > SEEN:
            seen.popitem(last=False)
        return True

    try:
        headers = {**PAGE_HEADERS, "content-type": "text/event-stream; charset=utf-8",
                   "x-accel-buffering": "no"}
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(k.encode(), v.encode()) for k, v in headers.items()]})
        if request.http.method == "HEAD":
            await send({"type": "http.response.body", "body": b""})
            return
        await send({"type": "http.response.body", "more_body": True,
                    "body": sse("hello", {"poll": dashboard.poll_interval})})
        source = dashboard.runs
        with contextlib.suppress(StoreError):
            for run in (await source.list_runs(limit=POLL_RUNS)).runs:
                fresh(run.to_dict())
        counts = await job_counts(dashboard.registry)
        opened = last_write = time.monotonic()
        next_poll = opened + dashboard.poll_interval
        while not gone.is_set() and not dashboard.closed:
            now = time.monotonic()
            if now - opened > MAX_AGE:
                break
            chunks: list[bytes] = []
            try:
                kind, record = await asyncio.wait_for(queue.get(), max(0.0, next_poll - now))
                if kind != "run" or fresh(record):
                    chunks.append(sse(kind, record))
            except TimeoutError:
                next_poll = time.monotonic() + dashboard.poll_interval
                source = dashboard.runs  # the dev server swaps its registry on reload
                try:
                    page = await source.list_runs(limit=POLL_RUNS)
                except StoreError as exc:  # down for now: in-process events still flow
                    logger.debug("live: cannot read runs: %s", exc)
                    page = RunPage([])
                for run in reversed(page.runs):
                    data = run.to_dict()
                    if fresh(data):
                        chunks.append(sse("run", data))
                now_counts = await job_counts(dashboard.registry)
                if now_counts != counts:
                    counts = now_counts
                    chunks.append(sse("jobs", counts))
            if not chunks and time.monotonic() - last_write > KEEPALIVE:
                chunks.append(b": keepalive\n\n")
            if chunks:
                await send({"type": "http.response.body", "body": b"".join(chunks),
                            "more_body": True})
                last_write = time.monotonic()
        await send({"type": "http.response.body", "body": b""})
    except OSError:  # the client went away mid-write
        pass
    finally:
        for undo in unsubscribe:
            undo()
        watcher.cancel()


async def job_counts(registry: Any) -> dict[str, int] | None:
    """The job counts per status, or None where there is no queue."""
    store = getattr(registry, "store", None)
    counts = getattr(store, "job_counts", None)
    if counts is None:
        return None
    try:
        found: dict[str, int] = await counts()
    except Exception as exc:  # a store that cannot be read right now
        logger.debug("job counts: %s", exc)
        return None
    return found
