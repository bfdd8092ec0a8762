"""events.on_job_changed: delivery, isolation of failing callbacks, unsubscribe."""

from __future__ import annotations

import asyncio
import logging

import pytest

from taskpack import events
from taskpack.store import Job


def _job(status: str = "pending") -> Job:
    return Job(id="j1", task="t", payload={}, status=status,  # type: ignore[arg-type]
               run_at=0.0, created_at=0.0, updated_at=0.0)


def test_job_changes_reach_sync_and_async_subscribers_and_failures_are_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    seen: list[str] = []

    def broken(job: Job) -> None:
        raise ValueError("dashboard gone")

    async def shipped(job: Job) -> None:
        seen.append(job.status)

    stop_broken = events.on_job_changed(broken)
    stop_shipped = events.on_job_changed(shipped)

    async def main() -> None:
        events.job_changed(_job("running"))
        await asyncio.sleep(0.01)

    with caplog.at_level(logging.ERROR, "taskpack.events"):
        try:
            asyncio.run(main())
        finally:
            stop_broken()
            stop_shipped()
    assert seen == ["running"]
    assert "job_changed callback" in caplog.text and "dashboard gone" in caplog.text
    events.job_changed(_job())  # nobody listens any more
    assert seen == ["running"]
    with pytest.raises(TypeError, match="on_job_changed"):
        events.on_job_changed(42)  # type: ignore[arg-type]
