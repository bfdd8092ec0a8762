"""taskpack's HTTP/1.1 server (taskpack/http1.py) on real sockets, in
process, with small handlers: framing, keep-alive and pipelining, limits,
timeouts, clients that go or read slowly, and shutdown. The bundle's own
handler over it, in a built server process, is tests/test_bundle_http.py."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from taskpack.http1 import MAX_HEAD, Exchange, Request, Server

JSON = [("content-type", "application/json")]


async def echo(request: Request, exchange: Exchange) -> None:
    """Answers the method, target and body it got."""
    exchange.respond(200, JSON, b"%s %s %s" % (request.method.encode(), request.target,
                                                request.body))


@contextlib.asynccontextmanager
async def serving(handler: Callable[[Request, Exchange], Awaitable[None]] = echo,
                  **options: float) -> AsyncIterator[tuple[Server, int]]:
    server = Server(handler, body_limit=int(options.pop("body_limit", 1000)), **options)
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    await server.serve(sock, 128)
    try:
        yield server, port
    finally:
        await server.shutdown(1.0)


async def exchange(port: int, data: bytes, *, wait: float = 2.0) -> bytes:
    """Send ``data`` on a new connection; all that comes back until the
    server closes it (or ``wait`` seconds of silence)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    received = b""
    try:
        while chunk := await asyncio.wait_for(reader.read(65536), wait):
            received += chunk
    except TimeoutError:
        pass
    finally:
        writer.close()
    return received


def test_keep_alive_and_pipelined_requests_are_answered_in_order() -> None:
    async def slow_first(request: Request, exchange_: Exchange) -> None:
        if request.target == b"/1":
            await asyncio.sleep(0.1)  # the second is read meanwhile, answered after
        await echo(request, exchange_)

    async def scenario() -> bytes:
        async with serving(slow_first) as (_, port):
            return await exchange(port, b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n"
                                        b"POST /2 HTTP/1.1\r\nHost: x\r\n"
                                        b"Content-Length: 2\r\n\r\nhi"
                                        b"GET /3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")

    answer = asyncio.run(scenario())
    assert answer.count(b"HTTP/1.1 200 OK") == 3
    assert answer.index(b"GET /1 ") < answer.index(b"POST /2 hi") < answer.index(b"GET /3 ")
    last_head = answer.rsplit(b"HTTP/1.1 200 OK", 1)[1]
    assert b"connection: close" in last_head and b"date: " in last_head
    assert b"content-length: 7\r\n" in answer  # "GET /1 "
    date = last_head.split(b"date: ")[1].split(b"\r\n")[0].decode()
    sent = email.utils.parsedate_to_datetime(date)
    assert date.endswith(" GMT") and abs(sent.timestamp() - time.time()) < 5


def test_http_1_0_closes_after_the_answer_and_head_has_no_body() -> None:
    async def scenario() -> tuple[bytes, bytes]:
        async with serving() as (_, port):
            old = await exchange(port, b"GET /old HTTP/1.0\r\n\r\n")
            head = await exchange(port, b"HEAD /h HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return old, head

    old, head = asyncio.run(scenario())
    assert old.startswith(b"HTTP/1.1 200 OK") and b"connection: close" in old
    assert old.endswith(b"GET /old ")
    assert b"content-length: 8\r\n" in head and head.endswith(b"\r\n\r\n")


def test_a_chunked_body_and_expect_100_continue() -> None:
    async def scenario() -> tuple[bytes, bytes]:
        async with serving() as (_, port):
            chunked = await exchange(port, b"POST /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                           b"Transfer-Encoding: chunked\r\n\r\n"
                                           b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"POST /e HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                         b"Content-Length: 4\r\nExpect: 100-continue\r\n\r\n")
            interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
            writer.write(b"body")
            rest = await asyncio.wait_for(reader.read(), 2)
            writer.close()
            return chunked, interim + rest

    chunked, expect = asyncio.run(scenario())
    assert chunked.endswith(b"POST /c abcde")
    assert expect.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK")
    assert expect.endswith(b"POST /e body")


def test_limits_and_malformed_requests_get_one_error_and_a_close() -> None:
    ran: list[bytes] = []

    async def handler(request: Request, exchange_: Exchange) -> None:
        ran.append(request.target)
        await echo(request, exchange_)

    async def scenario() -> list[bytes]:
        async with serving(handler, body_limit=10) as (_, port):
            return [
                # declared over the limit: refused before any of it is sent
                await exchange(port, b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n"),
                # chunked, passing the limit: refused then, the rest never read
                await exchange(port, b"POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
                                     b"\r\n\r\n8\r\n12345678\r\n8\r\n12345678\r\n"),
                await exchange(port, b"GET /c HTTP/1.1\r\nHost: x\r\nX-Big: "
                                     + b"y" * MAX_HEAD + b"\r\n\r\n"),
                await exchange(port, b"\x16\x03\x01 this is not HTTP\r\n\r\n"),
                # bytes that are not ASCII: refused in the target, kept in a header value
                await exchange(port, b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n"),
                await exchange(port, b"GET /ok HTTP/1.1\r\nHost: x\r\nX-Name: \xff\xfe\r\n"
                                     b"Connection: close\r\n\r\n"),
            ]

    large, chunked, head, garbage, raw, latin = asyncio.run(scenario())
    assert large.startswith(b"HTTP/1.1 413 ") and b"over the limit of 10 bytes" in large
    assert chunked.startswith(b"HTTP/1.1 413 ")
    assert head.startswith(b"HTTP/1.1 431 ")
    assert garbage.startswith(b"HTTP/1.1 400 ") and b'"statusCode": 400' in garbage
    assert raw.startswith(b"HTTP/1.1 400 ")
    for answer in (large, chunked, head, garbage, raw):
        assert b"connection: close" in answer and answer.count(b"HTTP/1.1") == 1
    assert latin.startswith(b"HTTP/1.1 200") and ran == [b"/ok"]


def test_an_upgrade_is_answered_as_http_then_closed() -> None:
    async def scenario() -> bytes:
        async with serving() as (_, port):
            return await exchange(port, b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                                        b"Upgrade: websocket\r\n\r\n")

    answer = asyncio.run(scenario())
    assert answer.startswith(b"HTTP/1.1 200 OK") and b"connection: close" in answer


def test_idle_and_slow_connections_are_closed() -> None:
    async def scenario() -> tuple[bytes, bytes, float]:
        async with serving(keep_alive=0.3, request_timeout=0.5) as (server, port):
            loop = asyncio.get_running_loop()
            began = loop.time()
            idle = await exchange(port, b"", wait=5)  # never sends: closed when idle
            idle_for = loop.time() - began
            slow = await exchange(port, b"POST /s HTTP/1.1\r\nHost: x\r\n"
                                        b"Content-Length: 5\r\n\r\nab",
                                  wait=5)  # never finishes its body: 408
            assert not server.connections
            return idle, slow, idle_for

    idle, slow, idle_for = asyncio.run(scenario())
    assert idle == b"" and 0.25 < idle_for < 2
    assert slow.startswith(b"HTTP/1.1 408 ") and b"did not arrive within 0.5 s" in slow


def test_a_client_gone_mid_body_reaches_no_handler_and_mid_run_drops_the_answer() -> None:
    ran: list[bytes] = []
    finished: list[bytes] = []

    async def handler(request: Request, exchange_: Exchange) -> None:
        ran.append(request.target)
        await asyncio.sleep(0.2)
        await echo(request, exchange_)
        finished.append(request.target)

    async def scenario() -> bytes:
        async with serving(handler) as (_, port):
            for data in (b"POST /half HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nabc",
                         b"GET /gone HTTP/1.1\r\nHost: x\r\n\r\n"):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(data)
                await writer.drain()
                await asyncio.sleep(0.05)
                writer.transport.abort()
            await asyncio.sleep(0.4)
            return await exchange(port, b"GET /next HTTP/1.1\r\nConnection: close\r\n\r\n")

    answer = asyncio.run(scenario())
    assert ran == [b"/gone", b"/next"] and finished == [b"/gone", b"/next"]
    assert answer.endswith(b"GET /next ")


def test_a_stream_waits_for_a_slow_reader_and_learns_it_has_gone() -> None:
    sent: list[int] = []

    async def handler(request: Request, exchange_: Exchange) -> None:
        exchange_.stream(200, [("content-type", "text/plain")])
        part = b"x" * 65536
        for index in range(1000):  # 64 MiB if nothing held it back
            await exchange_.write(part)
            sent.append(index)

    async def scenario() -> int:
        async with serving(handler) as (_, port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /s HTTP/1.1\r\nHost: x\r\n\r\n")
            await asyncio.sleep(0.5)  # reads nothing meanwhile
            held = len(sent)
            head = await reader.readuntil(b"\r\n\r\n")
            assert b"transfer-encoding: chunked" in head and b"content-length" not in head
            writer.transport.abort()
            await asyncio.sleep(0.2)
            return held

    held = asyncio.run(scenario())
    assert held < 200, f"{held} parts of 64 KiB written to a client reading nothing"


def test_a_client_that_pipelines_without_reading_is_not_read_on() -> None:
    answered: list[bytes] = []

    async def handler(request: Request, exchange_: Exchange) -> None:
        exchange_.respond(200, JSON, b"x" * 65536)
        answered.append(request.target)

    async def scenario() -> tuple[int, int]:
        async with serving(handler) as (_, port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /p HTTP/1.1\r\nHost: x\r\n\r\n" * 2000)  # 128 MiB of answers
            await asyncio.sleep(1.0)  # reads nothing meanwhile
            held = len(answered)
            received = 0
            while received < 2000 * 65536:  # then reads them all
                chunk = await asyncio.wait_for(reader.read(1 << 20), 5)
                assert chunk, "the server closed the connection"
                received += len(chunk)
            writer.close()
            await asyncio.sleep(0.1)
            return held, len(answered)

    held, total = asyncio.run(scenario())
    assert held < 300, f"{held} answers of 64 KiB written to a client reading nothing"
    assert total == 2000


def test_a_stream_is_chunked_and_its_reader_told_of_a_disconnect() -> None:
    noticed: list[str] = []

    async def handler(request: Request, exchange_: Exchange) -> None:
        exchange_.stream(200, [("content-type", "text/event-stream")])
        await exchange_.write(b"data: one\n\n")
        await exchange_.disconnected()
        noticed.append("gone")

    async def scenario() -> bytes:
        async with serving(handler) as (_, port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /live HTTP/1.1\r\nHost: x\r\n\r\n")
            got = b""
            while b"data: one" not in got:
                got += await asyncio.wait_for(reader.read(1024), 2)
            writer.close()
            for _ in range(40):
                if noticed:
                    break
                await asyncio.sleep(0.05)
            return got

    got = asyncio.run(scenario())
    assert b"\r\n\r\nb\r\ndata: one\n\n\r\n" in got and noticed == ["gone"]


def test_a_stream_to_an_http_1_0_client_is_sent_as_is_and_ended_by_the_close() -> None:
    async def handler(request: Request, exchange_: Exchange) -> None:
        exchange_.stream(200, [("content-type", "text/plain")])
        for part in (b"one ", b"two"):
            await exchange_.write(part)

    async def scenario() -> tuple[bytes, bytes]:
        async with serving(handler) as (_, port):
            return (await exchange(port, b"GET /s HTTP/1.0\r\n\r\n"),
                    await exchange(port, b"GET /s HTTP/1.1\r\nHost: x\r\n\r\n"))

    old, new = asyncio.run(scenario())
    assert b"transfer-encoding" not in old and old.endswith(b"\r\n\r\none two")
    assert b"transfer-encoding: chunked" in new
    assert new.endswith(b"\r\n\r\n4\r\none \r\n3\r\ntwo\r\n0\r\n\r\n")


def test_a_handler_that_fails_or_never_answers_is_a_500() -> None:
    async def handler(request: Request, exchange_: Exchange) -> None:
        if request.target == b"/fail":
            raise RuntimeError("boom")
        if request.target == b"/split":  # a header that would split the answer
            exchange_.respond(200, [("x-name", "a\r\nset-cookie: evil=1")], b"")

    async def scenario() -> list[bytes]:
        async with serving(handler) as (_, port):
            return [await exchange(port, b"GET /%s HTTP/1.1\r\nHost: x\r\n\r\n" % path)
                    for path in (b"fail", b"silent", b"split")]

    failed, silent, split = asyncio.run(scenario())
    assert failed.startswith(b"HTTP/1.1 500 ") and b"RuntimeError" not in failed
    assert silent.startswith(b"HTTP/1.1 500 ")
    assert split.startswith(b"HTTP/1.1 500 ") and b"evil" not in split


def test_shutdown_finishes_requests_in_progress_closes_idle_and_cancels_after_grace() -> None:
    events: list[str] = []

    async def handler(request: Request, exchange_: Exchange) -> None:
        try:
            await asyncio.sleep(0.3 if request.target == b"/short" else 60)
        except asyncio.CancelledError:
            events.append(f"cancelled {request.target.decode()}")
            raise
        await echo(request, exchange_)

    async def scenario() -> tuple[bytes, bytes, bytes]:
        server = Server(handler, body_limit=100)
        sock = socket.create_server(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        await server.serve(sock, 128)
        idle_reader, _ = await asyncio.open_connection("127.0.0.1", port)
        short = asyncio.create_task(exchange(port, b"GET /short HTTP/1.1\r\nHost: x\r\n\r\n"))
        stuck = asyncio.create_task(exchange(port, b"GET /stuck HTTP/1.1\r\nHost: x\r\n\r\n"))
        await asyncio.sleep(0.1)
        await server.shutdown(0.6)
        events.append("stopped")
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            events.append("still accepting")
        return await short, await stuck, await idle_reader.read()

    short, stuck, idle = asyncio.run(scenario())
    assert short.startswith(b"HTTP/1.1 200") and b"connection: close" in short
    assert stuck == b"" and idle == b""
    assert events == ["cancelled /stuck", "stopped"]
