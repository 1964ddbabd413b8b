"""The benchmark's open-loop load generator: statuses read right, and waiting counted."""

import asyncio

from bench.load import open_loop, render_posts


async def slow_server(delay_s: float) -> tuple[asyncio.Server, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:  # the client closed its connection
                return
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            body = await reader.readexactly(length)
            await asyncio.sleep(delay_s)
            status = b"202 Accepted" if body == b'{"ok":true}' else b"422 Unprocessable"
            reply = b'{"accepted":1}'
            writer.write(
                b"HTTP/1.1 " + status + b"\r\nContent-Length: %d\r\n\r\n" % len(reply) + reply
            )
            await writer.drain()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_open_loop_counts_the_wait_for_a_busy_connection() -> None:
    server, port = await slow_server(0.02)
    url = f"http://127.0.0.1:{port}/v1/transactions"
    try:
        bodies = [b'{"ok":true}'] * 9 + [b'{"ok":false}']
        requests = render_posts(url, bodies, {"Content-Type": "application/json"})
        # One connection, a request every 5 ms, each served in 20 ms: the queue grows, and a
        # generator measuring from when requests left instead of when they were due would not
        # see it.
        result = await open_loop(url, requests, rate=200, connections=1)
    finally:
        server.close()
        await server.wait_closed()
    assert result.statuses == {202: 9, 422: 1}
    latencies = sorted(result.latencies_ms)
    assert latencies[0] >= 19
    assert latencies[-1] >= 10 * 20 - 9 * 5 - 5  # the last waited for the nine before it
