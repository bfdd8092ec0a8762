import asyncio

from jobs.record import record

from taskpack import define_task


@define_task(description="Refresh CMS content")
async def run(event):
    await asyncio.sleep(0)
    record("cms:update", event.payload)
    return {"result": "CMS updated"}
