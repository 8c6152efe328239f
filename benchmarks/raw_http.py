"""The cheapest client there is, to measure the emulator's side alone: raw HTTP/1.1 keep-alive requests
written to asyncio streams, one coroutine per connection, each answer read by its Content-Length."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from urllib.parse import urlsplit


def request_bytes(method: str, root_url: str, path: str, token: str) -> bytes:
    host = urlsplit(root_url).netloc
    return (
        f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
        "Accept: application/json\r\nContent-Length: 0\r\n\r\n"
    ).encode()


async def _connection(host: str, port: int, requests: Sequence[bytes]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for request in requests:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.split(b" ", 2)[1] == b"200", head
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
    finally:
        writer.close()
        await writer.wait_closed()


def elapsed(root_url: str, per_connection: Sequence[Sequence[bytes]]) -> float:
    """Seconds to send every connection's requests in turn, all connections at once."""
    parts = urlsplit(root_url)
    host, port = parts.hostname, parts.port
    assert host is not None
    assert port is not None

    async def all_connections() -> float:
        started = time.perf_counter()
        await asyncio.gather(*(_connection(host, port, requests) for requests in per_connection))
        return time.perf_counter() - started

    return asyncio.run(all_connections())
