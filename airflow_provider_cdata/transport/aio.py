"""The async transport (the triggerer's): one ``httpx.AsyncClient`` per event loop and API root, shared
by every hook on that loop, and the request slots that keep its pool cheap.

The connection's ``timeout`` bounds each attempt as a whole: once the attempt has its request slot,
connecting, sending, waiting and reading the whole body run under one ``asyncio.wait_for``. httpx's
own timeouts only bound each socket operation. The body is read raw and decoded by
:class:`~.body.BodyReader` (httpx would inflate any amount at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import weakref
from collections.abc import AsyncGenerator, AsyncIterator
from typing import cast

import httpx

from airflow_provider_cdata.exceptions import CDataAPIError
from airflow_provider_cdata.transport.answers import network_error
from airflow_provider_cdata.transport.body import ACCEPT_ENCODING, BodyReader
from airflow_provider_cdata.transport.routes import USER_AGENT, Answer, Call, CallState, log_request

# Connections (and requests in flight) of the async client all hooks on one event loop share. httpcore
# checks every open connection (a syscall each) whenever a request starts or ends, so fewer connections
# cost less CPU per request. 16 at ~150 ms per call still carry ~100 polls a second: 3,000 triggers at
# the sensor's default 30 s interval.
ASYNC_POOL_SIZE = 16


class SharedAsyncClients:
    """One ``httpx.AsyncClient`` per (event loop, API URL), shared by every hook on that loop.

    500 triggers in one triggerer then share one connection pool. Clients are keyed by the loop object,
    so a client is never handed to another loop, and the entries of closed loops are dropped.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[str, tuple[httpx.AsyncClient, int]]
        ] = weakref.WeakKeyDictionary()

    def acquire(self, api_url: str) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        with self._lock:
            # A client's open connections hold their loop, so a closed loop would never leave the weak
            # map by itself: drop closed loops here (their clients cannot be used or closed any more).
            for closed in [known for known in self._clients if known.is_closed()]:
                del self._clients[closed]
            by_url = self._clients.setdefault(loop, {})
            client, users = by_url.get(api_url, (None, 0))
            if client is None or client.is_closed:
                client, users = new_async_client(), 0
            by_url[api_url] = (client, users + 1)
            return client

    async def release(self, api_url: str, client: httpx.AsyncClient) -> None:
        """Drop one user; the last one closes the client (on the loop that owns it)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            by_url = self._clients.get(loop, {})
            current, users = by_url.get(api_url, (None, 0))
            if current is not client:
                close = False
            elif users > 1:
                by_url[api_url] = (client, users - 1)
                close = False
            else:
                by_url.pop(api_url, None)
                close = True
        if close:
            await client.aclose()

    def users(self, api_url: str) -> int:
        """Hooks on the running loop that hold the client for ``api_url`` (for tests)."""
        with self._lock:
            return self._clients.get(asyncio.get_running_loop(), {}).get(api_url, (None, 0))[1]


def new_async_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(
        headers={
            "User-Agent": f"{USER_AGENT} httpx/{httpx.__version__}",
            "Accept": "application/json",
            "Accept-Encoding": ACCEPT_ENCODING,
        },
        limits=httpx.Limits(max_connections=ASYNC_POOL_SIZE, max_keepalive_connections=ASYNC_POOL_SIZE),
        follow_redirects=False,
    )


# Requests of one shared client let into httpx at once; the others wait here, in an O(1) queue. httpcore's
# pool matches every queued request against every connection whenever a request starts or ends. 500
# triggers on one loop (benchmarks/, figure 4) used 12-13 ms of CPU per poll with 100 connections and
# no slots, most of it in that matching; 4-4.5 ms with the slots and 16 connections, and the loop's p99
# lag fell from ~0.5 s to ~85 ms.
_request_slots: weakref.WeakKeyDictionary[httpx.AsyncClient, asyncio.Semaphore] = weakref.WeakKeyDictionary()


@contextlib.asynccontextmanager
async def request_slot(client: httpx.AsyncClient, timeout: float) -> AsyncIterator[None]:
    """Hold one of the client's ASYNC_POOL_SIZE slots; waiting longer than ``timeout`` is httpx's
    PoolTimeout, as waiting for a connection inside httpx would have been."""
    slots = _request_slots.get(client)
    if slots is None:
        slots = _request_slots[client] = asyncio.Semaphore(ASYNC_POOL_SIZE)
    if slots.locked():
        try:
            await asyncio.wait_for(slots.acquire(), timeout)
        except asyncio.TimeoutError:
            raise httpx.PoolTimeout(f"no free connection within {timeout:g} s") from None
    else:
        await slots.acquire()
    try:
        yield
    finally:
        slots.release()


shared_clients = SharedAsyncClients()


class AsyncTransport:
    """Sends one request of a call to ``api_url`` with the running loop's shared client."""

    def __init__(self, api_url: str, timeout: float, logger: logging.Logger) -> None:
        self.api_url = api_url
        self.timeout = timeout
        self._logger = logger
        self.client: httpx.AsyncClient | None = None
        self._loop: weakref.ref[asyncio.AbstractEventLoop] | None = None

    def _current_client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self.client is None or self.client.is_closed or self._loop is None or self._loop() is not loop:
            # First use, or this hook moved to another event loop (a client cannot outlive its loop).
            self.client = shared_clients.acquire(self.api_url)
            self._loop = weakref.ref(loop)
        return self.client

    async def send(self, call: Call, token: str, state: CallState) -> Answer:
        """One attempt: a request slot (waiting at most ``timeout``), then the whole exchange within
        ``timeout`` seconds."""
        started = state.sending(token)
        client = self._current_client()
        try:
            async with request_slot(client, self.timeout):
                try:
                    status, headers, content = await asyncio.wait_for(
                        self._exchange(client, call, token, state), self.timeout
                    )
                except asyncio.TimeoutError:
                    raise httpx.ReadTimeout(f"no whole answer within {self.timeout:g} s") from None
        except httpx.TransportError as exc:
            log_request(self._logger, call, type(exc).__name__, started, state)
            raise network_error(call, exc, state) from None
        except CDataAPIError:  # the body: too large, or it does not decode
            log_request(self._logger, call, "refused body", started, state)
            raise
        log_request(self._logger, call, status, started, state)
        return Answer(status, headers, content, state.requests)

    async def _exchange(
        self, client: httpx.AsyncClient, call: Call, token: str, state: CallState
    ) -> tuple[int, httpx.Headers, bytes]:
        request = client.build_request(
            call.method,
            self.api_url + call.path,
            json=call.json,
            params=call.params,
            headers={"Authorization": f"Bearer {token}"},
            timeout=self.timeout,
        )
        response = await client.send(request, stream=True)
        try:
            headers = response.headers
            reader = BodyReader(call, response.status_code, headers.get("content-encoding"), state.requests)
            reader.declared_length(headers.get("content-length"))
            raw = cast("AsyncGenerator[bytes, None]", response.aiter_raw())  # closed here, not by the GC
            async with contextlib.aclosing(raw) as chunks:
                async for chunk in chunks:
                    reader.feed(chunk)
            return response.status_code, headers, reader.content()
        finally:
            await response.aclose()

    async def aclose(self) -> None:
        """Stop using the shared client (the last hook on this loop closes it)."""
        loop = asyncio.get_running_loop()
        client, self.client = self.client, None
        owner, self._loop = self._loop, None
        # A client of another (closed) loop is not released here: acquire() drops that loop's entry.
        if client is not None and owner is not None and owner() is loop:
            await shared_clients.release(self.api_url, client)
