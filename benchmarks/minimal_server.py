"""A minimal HTTP/1.1 keep-alive server: every request gets the same small JSON answer at once.

The client-CPU figure (:mod:`benchmarks.client_cpu`) runs it in its own process so that the server
is never what limits a client: it parses nothing but the head's end and a ``Content-Length``.

    python -m benchmarks.minimal_server      # prints "port N", serves on 127.0.0.1 until killed
"""

from __future__ import annotations

import asyncio
import json

CONNECTIONS = [
    {
        "id": f"00000000-0000-4000-8000-00000000000{i}",
        "name": f"conn-{i}",
        "dataSource": "Salesforce",
        "externalId": f"customer-{i}",
        "status": "ACTIVE",
    }
    for i in range(3)
]
BODY = json.dumps({"connections": CONNECTIONS}).encode()
ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(BODY)).encode()
    + b"\r\n\r\n"
    + BODY
)


class _Answering(asyncio.Protocol):
    def __init__(self) -> None:
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while (end := self._buffer.find(b"\r\n\r\n")) >= 0:
            head = self._buffer[:end].lower()
            length = 0
            at = head.find(b"\r\ncontent-length:")
            if at >= 0:
                length = int(head[at + 17 :].split(b"\r\n", 1)[0])
            if len(self._buffer) < end + 4 + length:
                return
            self._buffer = self._buffer[end + 4 + length :]
            assert self._transport is not None
            self._transport.write(ANSWER)


async def serve() -> None:
    server = await asyncio.get_running_loop().create_server(_Answering, "127.0.0.1", 0)
    print(f"port {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve())
