"""Figure 7: the client's own CPU per call, every HTTP client side by side against one minimal server.

The server (:mod:`benchmarks.minimal_server`, its own process) answers at once, so the figure is what
each client costs in the calling process: ``time.process_time()`` around a block of sequential
keep-alive calls, each one an authenticated GET of the list route whose JSON body is decoded. Sides:

* async: raw asyncio streams (the floor), a bare ``aiohttp.ClientSession``, a bare ``httpx.AsyncClient``,
  and ``CDataHook.alist_connections`` (the provider's async transport);
* sync: a bare ``urllib3.PoolManager``, a ``requests.Session`` with ``trust_env`` off, and
  ``CDataHook.list_connections``.

Each round runs every side once, in a rotating order; a side's figure is the median of its rounds, and
a ratio is the median of the per-round ratios, so a burst of load from another process on the shared
machine spoils one round, not the figure. Goals (issue 13): the async hook at most 2x bare aiohttp, the
sync hook at most 1.15x requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from benchmarks.common import Row
from benchmarks.emulator_process import EmulatorProcess

ROUNDS = 9
BLOCK = 200  # calls per side per round
ASYNC_GOAL = 2.0  # the async hook over bare aiohttp
SYNC_GOAL = 1.15  # the sync hook over requests (trust_env off)
PATH = "/api/poweredby/connection/list"


@contextlib.contextmanager
def minimal_server() -> Iterator[int]:
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.minimal_server"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        yield int(process.stdout.readline().split()[1])
    finally:
        process.terminate()
        process.wait(10)


def _connection(port: int) -> dict[str, Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return {
        "conn_type": "cdata",
        "host": f"http://127.0.0.1:{port}/api",
        "login": str(uuid.uuid4()),
        "password": pem,
        "extra": {"account_id": str(uuid.uuid4())},
    }


def _decoded(body: bytes) -> list[Any]:
    connections: list[Any] = json.loads(body)["connections"]
    return connections


class _Raw:
    """HTTP/1.1 written to asyncio streams by hand: the floor any async client stands on."""

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.request = (
            f"GET {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
            "Accept: application/json\r\n\r\n"
        ).encode()
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def call(self) -> list[Any]:
        if self.streams is None:
            self.streams = await asyncio.open_connection("127.0.0.1", self.port)
        reader, writer = self.streams
        writer.write(self.request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        return _decoded(await reader.readexactly(length))

    async def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            await self.streams[1].wait_closed()


def run(emulator: EmulatorProcess | None = None) -> list[Row]:
    import aiohttp
    import httpx
    import requests
    import urllib3

    from airflow_provider_cdata.hooks import CDataHook

    with minimal_server() as port:
        connection = _connection(port)
        os.environ["AIRFLOW_CONN_CDATA_BENCH_CPU"] = json.dumps(connection)
        url = f"http://127.0.0.1:{port}{PATH}"
        hook = CDataHook("cdata_bench_cpu")
        hook.list_connections()  # reads the connection, loads the key, mints the token
        assert hook._minter is not None
        token = hook._minter.token(connection["extra"]["account_id"]).token
        auth = {"Authorization": f"Bearer {token}"}
        loop = asyncio.new_event_loop()

        async def open_async() -> tuple[aiohttp.ClientSession, httpx.AsyncClient]:
            return aiohttp.ClientSession(), httpx.AsyncClient()

        aio_session, httpx_client = loop.run_until_complete(open_async())
        raw = _Raw(port, token)
        session = requests.Session()
        session.trust_env = False
        pool = urllib3.PoolManager()

        async def aiohttp_call() -> list[Any]:
            async with aio_session.get(url, headers=auth) as answer:
                return _decoded(await answer.read())

        async def httpx_call() -> list[Any]:
            return _decoded((await httpx_client.get(url, headers=auth)).content)

        async_sides: dict[str, Callable[[], Awaitable[list[Any]]]] = {
            "raw asyncio streams": raw.call,
            "aiohttp ClientSession": aiohttp_call,
            "httpx AsyncClient": httpx_call,
            "CDataHook.alist_connections": hook.alist_connections,
        }
        sync_sides: dict[str, Callable[[], list[Any]]] = {
            "urllib3 PoolManager": lambda: _decoded(pool.request("GET", url, headers=auth).data),
            "requests.Session, trust_env off": lambda: _decoded(session.get(url, headers=auth).content),
            "CDataHook.list_connections": hook.list_connections,
        }

        async def async_block(call: Callable[[], Awaitable[list[Any]]]) -> float:
            started = time.process_time()
            for _ in range(BLOCK):
                assert len(await call()) == 3
            return (time.process_time() - started) / BLOCK

        def sync_block(call: Callable[[], list[Any]]) -> float:
            started = time.process_time()
            for _ in range(BLOCK):
                assert len(call()) == 3
            return (time.process_time() - started) / BLOCK

        names = [*async_sides, *sync_sides]
        cpu: dict[str, list[float]] = {name: [] for name in names}
        for name in async_sides:  # warm up: connections, imports, caches
            loop.run_until_complete(async_sides[name]())
        for round_number in range(ROUNDS):
            shift = round_number % len(names)
            for name in names[shift:] + names[:shift]:
                if name in async_sides:
                    cpu[name].append(loop.run_until_complete(async_block(async_sides[name])))
                else:
                    cpu[name].append(sync_block(sync_sides[name]))

        async def close_async() -> None:
            await aio_session.close()
            await httpx_client.aclose()
            await raw.close()
            await hook.aclose()

        loop.run_until_complete(close_async())
        loop.close()
        hook.close()
        session.close()
        pool.clear()
        del os.environ["AIRFLOW_CONN_CDATA_BENCH_CPU"]

    def ratio(side: str, base: str) -> float:
        return statistics.median(s / b for s, b in zip(cpu[side], cpu[base], strict=True))

    figure = "7 client CPU"
    rows = [
        Row(
            figure,
            f"{name}, CPU per call (median of {ROUNDS} x {BLOCK})",
            f"{statistics.median(v) * 1e6:,.0f} µs",
        )
        for name, v in cpu.items()
    ]
    async_ratio = ratio("CDataHook.alist_connections", "aiohttp ClientSession")
    sync_ratio = ratio("CDataHook.list_connections", "requests.Session, trust_env off")
    return [
        *rows,
        Row(
            figure,
            "async hook / bare aiohttp (median of per-round ratios)",
            f"{async_ratio:.2f}",
            f"<= {ASYNC_GOAL:g}",
            async_ratio <= ASYNC_GOAL,
        ),
        Row(figure, "httpx / bare aiohttp", f"{ratio('httpx AsyncClient', 'aiohttp ClientSession'):.2f}"),
        Row(
            figure,
            "sync hook / requests, trust_env off",
            f"{sync_ratio:.2f}",
            f"<= {SYNC_GOAL:g}",
            sync_ratio <= SYNC_GOAL,
        ),
        Row(
            figure,
            "urllib3 / requests, trust_env off",
            f"{ratio('urllib3 PoolManager', 'requests.Session, trust_env off'):.2f}",
        ),
    ]


if __name__ == "__main__":
    from benchmarks.run import table

    print(table(run()))
