"""An open-loop HTTP load generator lean enough to hold hundreds of requests a second on the
same two cores as the service it measures.

httpx spends milliseconds of CPU per request: at 500 requests a second it could not keep the
schedule, and the latencies measured its own queue. This one writes pre-rendered
HTTP/1.1 requests on keep-alive connections and reads only the status line, headers and body
length. Latency counts from when a request was *due*, not when it left, so a stalled server
cannot hide behind a generator that waited for it (coordinated omission)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from bench.harness import collector_paused


@dataclass
class LoadResult:
    latencies_ms: list[float]
    statuses: dict[int, int]
    achieved_rate: float


def render_posts(url: str, bodies: Sequence[bytes], headers: dict[str, str]) -> list[bytes]:
    """The raw HTTP/1.1 POST requests of ``bodies`` to ``url``."""
    parts = urlsplit(url)
    fixed = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return [
        (
            f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n{fixed}"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        + body
        for body in bodies
    ]


async def _read_response(reader: asyncio.StreamReader) -> int:
    status = int((await reader.readline()).split(b" ", 2)[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


async def open_loop(
    url: str, requests: Sequence[bytes], rate: float, connections: int
) -> LoadResult:
    """Send ``requests`` at ``rate`` a second, on schedule whatever the server does, over at most
    ``connections`` keep-alive connections; a request due while all are busy waits for one, and
    that wait counts in its latency."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait(await asyncio.open_connection(host, port))
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    async def send(request: bytes, due: float) -> None:
        reader, writer = await idle.get()
        writer.write(request)
        status = await _read_response(reader)
        latencies.append((time.perf_counter() - due) * 1000)
        statuses[status] = statuses.get(status, 0) + 1
        idle.put_nowait((reader, writer))

    with collector_paused():
        began = time.perf_counter()
        tasks = []
        for i, request in enumerate(requests):
            due = began + i / rate
            if (delay := due - time.perf_counter()) > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(send(request, due)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - began
    while not idle.empty():
        _, writer = idle.get_nowait()
        writer.close()
    return LoadResult(latencies, statuses, len(requests) / elapsed)
