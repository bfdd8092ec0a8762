"""Jobs on Cloudflare Queues (preset ``cloudflare_module``).

A Worker has no store a worker loop could poll, so the queue is Cloudflare's:

* :class:`CloudflareQueue` is the Worker's :class:`~taskpack.queue.JobSink`:
  ``enqueue_task`` sends the checked job as one message to the producer
  binding ``TASKPACK_JOBS`` (``delaySeconds`` for a delay, at most 12 h);
* :func:`consume` is the Worker's ``queue`` handler: each message of the
  batch runs its task through the registry (``event.job`` carries the
  message's job id and ``message.attempts``), then is ``ack()``-ed on
  success, ``retry(delaySeconds=…)``-ed with the task's backoff while
  attempts remain, and after the last attempt (or a
  :class:`~taskpack.errors.NonRetryableError`) sent with its error to the
  dead-letter producer ``TASKPACK_DEAD_LETTERS`` when one is configured,
  then acked. A message that is not a taskpack job is logged and acked.

What Cloudflare Queues lack, this backend refuses at enqueue (one clear
``ValueError``): job keys (no dedupe/debounce), named serial queues, and
delays over 12 hours. Delivery is at-least-once, as everywhere.

Plain Python: the entry hands in the SDK's objects; nothing here imports
the Workers SDK.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections.abc import Iterable
from typing import Any

from ..registry import Registry
from ..store import Job, NewJob
from ..task import JobInfo, TaskContext

logger = logging.getLogger("taskpack.queue")

JOBS_BINDING = "TASKPACK_JOBS"
DEAD_LETTERS_BINDING = "TASKPACK_DEAD_LETTERS"
MAX_DELAY = 43_200
"""Cloudflare's largest ``delaySeconds`` (12 hours)."""
MESSAGE_KIND = "taskpack.job"


class CloudflareQueue:
    """Sends jobs to the producer binding ``binding`` (the Worker's
    ``env.TASKPACK_JOBS``)."""

    def __init__(self, binding: Any) -> None:
        self.binding = binding

    async def enqueue(self, job: NewJob) -> Job:
        if job.key is not None:
            raise ValueError("job keys are not available on Cloudflare Queues (no dedupe or "
                             "debounce there); enqueue without key=")
        if job.queue is not None:
            raise ValueError("named queues are not available on Cloudflare Queues (no serial "
                             "delivery there); enqueue without queue=")
        now = time.time()
        delay = max(0, math.ceil(job.run_at - now - 0.001))
        if delay > MAX_DELAY:
            raise ValueError(f"delay of {delay}s is over Cloudflare Queues' limit of "
                             f"{MAX_DELAY}s (12 hours)")
        job_id = os.urandom(16).hex()
        body = {"kind": MESSAGE_KIND, "id": job_id, "task": job.task,
                "payload": dict(job.payload), "max_attempts": job.max_attempts,
                "trigger": job.trigger, "enqueued_at": now}
        if delay:
            await self.binding.send(body, delaySeconds=delay)
        else:
            await self.binding.send(body)
        return Job(id=job_id, task=job.task, payload=dict(job.payload), status="pending",
                   run_at=now + delay, created_at=now, updated_at=now,
                   max_attempts=job.max_attempts, trigger=job.trigger)


async def consume(registry: Registry, messages: Iterable[Any], *, env: Any, ctx: Any,
                  context: dict[str, Any] | None = None) -> dict[str, str]:
    """Run each message's job (concurrently) and ack or retry it; the action
    taken per message id (``ack``, ``retry``, ``dead``, ``dropped``)."""
    items = list(messages)
    actions = await asyncio.gather(*(
        _one(registry, message, env=env, ctx=ctx, context=context or {}) for message in items))
    return {str(getattr(message, "id", i)): action
            for i, (message, action) in enumerate(zip(items, actions, strict=True))}


async def _one(registry: Registry, message: Any, *, env: Any, ctx: Any,
               context: dict[str, Any]) -> str:
    body = _plain(getattr(message, "body", None))
    if not isinstance(body, dict) or body.get("kind") != MESSAGE_KIND:
        logger.error("queue message %s is not a taskpack job; acked and dropped: %r",
                     getattr(message, "id", "?"), body)
        message.ack()
        return "dropped"
    attempt = int(getattr(message, "attempts", 1) or 1)
    info = JobInfo(str(body["id"]), attempt, int(body.get("max_attempts") or 1))
    try:
        outcome = await registry.run_job(
            str(body["task"]), body.get("payload") or {},
            TaskContext(trigger=str(body.get("trigger") or "job"), env=env, ctx=ctx, **context),
            info)
    except Exception as exc:  # the task is gone from this build, or cannot load
        logger.error("job %s: task %s cannot run: %s", info.id, body.get("task"), exc)
        return await _dead(env, message, body, attempt, f"{type(exc).__name__}: {exc}", None)
    if outcome.ok:
        message.ack()
        return "ack"
    if outcome.retry_in is not None:
        message.retry(delaySeconds=min(MAX_DELAY, max(0, math.ceil(outcome.retry_in))))
        return "retry"
    return await _dead(env, message, body, attempt, outcome.error, outcome.traceback)


async def _dead(env: Any, message: Any, body: dict[str, Any], attempt: int,
                error: str | None, trace: str | None) -> str:
    """A final failure: to the dead-letter queue when there is one, then acked."""
    dead_letters = getattr(env, DEAD_LETTERS_BINDING, None)
    if dead_letters is not None:
        await dead_letters.send({**body, "attempts": attempt, "error": error,
                                 "traceback": trace})
    else:
        logger.error("job %s failed for good after %d attempt(s): %s (no dead-letter queue "
                     "configured: [cloudflare] dead_letter_queue)", body["id"], attempt, error)
    message.ack()
    return "dead"


def _plain(value: Any) -> Any:
    """A message body as plain Python (the SDK converts since 1.4; a raw JS
    proxy is converted here)."""
    to_py = getattr(value, "to_py", None)
    return to_py() if callable(to_py) else value
