"""A hand-written Python Worker that proves the Pyodide harness: it reports
what the runtime handed it, so the tests can compare with what they sent."""

import asyncio

from workers import Request, Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        if not isinstance(request, Request):
            request = Request(request)
        print("fetch", request.method, request.url)
        return Response.json(
            {
                "method": str(request.method),
                "url": request.url,
                "x_test": request.headers.get("x-test"),
                "body": await request.text(),
                "secret": getattr(self.env, "SECRET", None),
            },
            status=201,
        )

    async def scheduled(self, controller, env, ctx):
        print("scheduled", controller.cron, controller.scheduledTime)

        async def later():
            await asyncio.sleep(0.01)
            print("background done")
            return {"cron": controller.cron, "scheduledTime": controller.scheduledTime}

        async def broken():
            raise ValueError("background failed")

        self.ctx.waitUntil(asyncio.ensure_future(later()))
        ctx.waitUntil(asyncio.ensure_future(broken()))
        return "handled"
