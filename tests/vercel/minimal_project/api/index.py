"""A hand-written minimal Vercel Python function: a bare ASGI ``app``.

Used to prove that the pinned ``vercel build`` works on this machine,
independently of taskpack's generated output.
"""


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": b'{"ok": true}'})
