"""Handlers registered in taskpack.toml instead of living under tasks/."""

from jobs.record import record
from taskpack import define_task


@define_task
async def daily(event):
    record("report:daily", event.payload)
    return {"result": {"report": "daily", "sections": 3}}
