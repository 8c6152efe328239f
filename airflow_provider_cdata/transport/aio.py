"""The async transport (the triggerer's): one ``aiohttp.ClientSession`` per event loop and API root,
shared by every hook on that loop, and the request slots that bound what it has in flight.

aiohttp, not httpx: measured side by side against one minimal server (benchmarks/, figure 7), a bare
``httpx.AsyncClient`` costs ~5x the CPU per call of a bare ``aiohttp.ClientSession`` here, and the
triggerer pays it on every poll of every waiting customer. aiohttp is also what Airflow's own HTTP
provider uses for its async hooks.

The connection's ``timeout`` bounds each attempt as a whole: once the attempt has its request slot,
connecting, sending, waiting and reading the whole body run under one deadline (aiohttp's own
timeouts are off). The body is read raw (``auto_decompress=False``) and decoded by
:class:`~.body.BodyReader`, so aiohttp never inflates a body, and never past the cap.

aiohttp's exceptions may carry the request's URL and, in their ``repr``, its headers (the bearer
token): none is re-raised, chained or logged. Each is turned into a :class:`CDataAPIError` whose text
is scrubbed of the call's tokens, raised outside the ``except`` block so that it carries no
``__context__`` pointing at the original.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import sys
import threading
import weakref
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import requests
from multidict import CIMultiDictProxy

from airflow_provider_cdata import SESSION_POOL_SIZE
from airflow_provider_cdata.exceptions import CDataAPIError
from airflow_provider_cdata.transport.answers import no_answer
from airflow_provider_cdata.transport.body import ACCEPT_ENCODING, BodyReader
from airflow_provider_cdata.transport.routes import USER_AGENT, Answer, Call, CallState, log_request
from airflow_provider_cdata.transport.tls import ca_bundle, ssl_context

# Connections (and requests in flight) of the session all hooks on one event loop share. 16 at ~150 ms
# per call already carry ~100 polls a second (3,000 triggers at the sensor's default 30 s interval);
# it is the sync pool's 32 because the bulk operators fan out on this session too, up to their
# max_concurrency cap of 32 (operators/_fanout.py). A triggerer opens the 17th connection only when
# more than 16 polls are in flight at once.
ASYNC_POOL_SIZE = SESSION_POOL_SIZE

if sys.version_info >= (3, 11):
    _deadline = asyncio.timeout  # a deadline on the running task: no task of its own, unlike wait_for
else:  # pragma: no cover - Python 3.10: the same, from the package aiohttp itself requires there
    from async_timeout import timeout as _deadline


class PoolTimeout(Exception):
    """No request slot came free within the attempt's timeout: nothing was sent."""


class SharedAsyncClients:
    """One ``aiohttp.ClientSession`` per (event loop, API URL), shared by every hook on that loop.

    500 triggers in one triggerer then share one connection pool. Sessions are keyed by the loop object,
    so a session is never handed to another loop (a triggerer may run loops in several threads), and
    the entries of closed loops are dropped.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[str, tuple[aiohttp.ClientSession, int]]
        ] = weakref.WeakKeyDictionary()

    def acquire(self, api_url: str) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        with self._lock:
            # A session's open connections hold their loop, so a closed loop would never leave the weak
            # map by itself: drop closed loops here (their sessions cannot be used or closed any more).
            for closed in [known for known in self._clients if known.is_closed()]:
                del self._clients[closed]
            by_url = self._clients.setdefault(loop, {})
            client, users = by_url.get(api_url, (None, 0))
            if client is None or client.closed:
                client, users = new_async_client(api_url), 0
            by_url[api_url] = (client, users + 1)
            return client

    async def release(self, api_url: str, client: aiohttp.ClientSession) -> None:
        """Drop one user; the last one closes the session (on the loop that owns it)."""
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
            await client.close()

    def users(self, api_url: str) -> int:
        """Hooks on the running loop that hold the session for ``api_url`` (for tests)."""
        with self._lock:
            return self._clients.get(asyncio.get_running_loop(), {}).get(api_url, (None, 0))[1]


_ssl_lock = threading.Lock()
_ssl_contexts: dict[str, ssl.SSLContext] = {}


def _ssl_context() -> ssl.SSLContext:
    """The CA bundle the sync transport trusts (``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE`` or certifi's),
    loaded once per process: loading it takes milliseconds, and every event loop's session uses it."""
    bundle = ca_bundle()
    with _ssl_lock:
        context = _ssl_contexts.get(bundle)
        if context is None:
            context = _ssl_contexts[bundle] = ssl_context(bundle)
        return context


def proxy_for(api_url: str) -> str | None:
    """The proxy the environment names for ``api_url`` (``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY``,
    ``NO_PROXY``), by requests' own rule: read once per session, as the sync transport reads it."""
    proxies = requests.utils.get_environ_proxies(api_url)
    return proxies.get(api_url.partition(":")[0].lower()) or proxies.get("all")


def new_async_client(api_url: str) -> aiohttp.ClientSession:
    https = api_url.lower().startswith("https:")
    connector = aiohttp.TCPConnector(
        limit=ASYNC_POOL_SIZE,
        limit_per_host=ASYNC_POOL_SIZE,
        ssl=_ssl_context() if https else True,
        use_dns_cache=True,
    )
    session = aiohttp.ClientSession(
        connector=connector,
        headers={
            "User-Agent": f"{USER_AGENT} aiohttp/{aiohttp.__version__}",
            "Accept": "application/json",
            "Accept-Encoding": ACCEPT_ENCODING,
        },
        auto_decompress=False,  # BodyReader decodes, never past the cap
        trust_env=False,  # no ~/.netrc, no proxy variables read per request (proxy_for reads them once)
        cookie_jar=aiohttp.DummyCookieJar(),  # every call stands alone: nothing carried between customers
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=None, sock_read=None),  # one deadline: ours
        raise_for_status=False,
        connector_owner=True,
    )
    # aiohttp re-sends an idempotent request once, by itself, when a reused connection drops: a second
    # retry policy, under ours, that the attempt count and the log would not show. One policy: ours.
    # (An attribute, not an argument: aiohttp has no public switch; tests/test_hook_calls.py guards it.)
    session._retry_connection = False
    return session


# Requests of one shared session let into aiohttp at once (the others wait here, in an O(1) queue):
# waiting longer than the attempt's timeout is a PoolTimeout, a failure before anything was sent.
_request_slots: weakref.WeakKeyDictionary[aiohttp.ClientSession, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


@contextlib.asynccontextmanager
async def request_slot(client: aiohttp.ClientSession, timeout: float) -> AsyncIterator[None]:
    """Hold one of the session's ASYNC_POOL_SIZE slots, waiting at most ``timeout`` for it."""
    slots = _request_slots.get(client)
    if slots is None:
        slots = _request_slots[client] = asyncio.Semaphore(ASYNC_POOL_SIZE)
    if slots.locked():
        try:
            await asyncio.wait_for(slots.acquire(), timeout)
        except asyncio.TimeoutError:
            raise PoolTimeout(f"no free connection within {timeout:g} s") from None
    else:
        await slots.acquire()
    try:
        yield
    finally:
        slots.release()


shared_clients = SharedAsyncClients()


def classify(exc: BaseException) -> tuple[str, bool, bool]:
    """What an aiohttp failure was: (what to call it, whether the request may have left, TLS)."""
    if isinstance(exc, ssl.SSLError | aiohttp.ClientSSLError):
        return "TLS failure", False, True
    if isinstance(exc, PoolTimeout):
        return "timed out", False, False
    if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ClientProxyConnectionError):
        return "connection error", False, False
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):  # one class from Python 3.11 on
        return "timed out", True, False
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return "connection closed or answer cut short", True, False
    if isinstance(exc, aiohttp.ClientResponseError):  # an answer aiohttp could not parse
        return "connection closed or answer cut short", True, False
    return "connection error", True, False


def detail_of(exc: BaseException) -> str:
    """The failure's own text, without what aiohttp adds of the request (its URL; never its repr, which
    holds the request's headers). Scrubbed of tokens again by ``no_answer``."""
    if isinstance(exc, aiohttp.ClientResponseError):
        return exc.message or type(exc).__name__
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect ({exc.os_error.strerror or type(exc.os_error).__name__})"
    return str(exc) or type(exc).__name__


class AsyncTransport:
    """Sends one request of a call to ``api_url`` with the running loop's shared session."""

    def __init__(self, api_url: str, timeout: float, logger: logging.Logger) -> None:
        self.api_url = api_url
        self.timeout = timeout
        self._logger = logger
        self.client: aiohttp.ClientSession | None = None
        self._loop: weakref.ref[asyncio.AbstractEventLoop] | None = None
        self._proxy: str | None = None

    def _current_client(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self.client is None or self.client.closed or self._loop is None or self._loop() is not loop:
            # First use, or this hook moved to another event loop (a session cannot outlive its loop).
            self.client = shared_clients.acquire(self.api_url)
            self._loop = weakref.ref(loop)
            self._proxy = proxy_for(self.api_url)
        return self.client

    async def send(self, call: Call, token: str, state: CallState) -> Answer:
        """One attempt: a request slot (waiting at most ``timeout``), then the whole exchange within
        ``timeout`` seconds."""
        started = state.sending(token)
        client = self._current_client()
        failure: CDataAPIError | None = None
        try:
            async with request_slot(client, self.timeout), _deadline(self.timeout):
                status, headers, content = await self._exchange(client, call, token, state)
        except CDataAPIError as exc:  # the body: too large, or it does not decode
            log_request(self._logger, call, "refused body", started, state)
            failure = exc
        except (TimeoutError, asyncio.TimeoutError) as exc:  # the attempt's deadline (or aiohttp's)
            log_request(self._logger, call, "TimeoutError", started, state)
            detail = str(exc) or f"no whole answer within {self.timeout:g} s"
            failure = no_answer(call, "timed out", detail, state, sent=True, tls=False)
        except (aiohttp.ClientError, OSError, PoolTimeout) as exc:
            log_request(self._logger, call, type(exc).__name__, started, state)
            kind, sent, tls = classify(exc)
            failure = no_answer(call, kind, detail_of(exc), state, sent=sent, tls=tls)
        if failure is not None:
            # Raised here, outside the except blocks: no __context__ leads back to aiohttp's exception.
            raise failure
        log_request(self._logger, call, status, started, state)
        return Answer(status, headers, content, state.requests)

    async def _exchange(
        self, client: aiohttp.ClientSession, call: Call, token: str, state: CallState
    ) -> tuple[int, CIMultiDictProxy[str], bytes]:
        options: dict[str, Any] = {}
        if call.json is not None:
            options["json"] = call.json
        if call.params:
            options["params"] = call.params
        if self._proxy:
            options["proxy"] = self._proxy
        async with client.request(
            call.method,
            self.api_url + call.path,
            headers={"Authorization": f"Bearer {token}"},
            allow_redirects=False,
            **options,
        ) as response:
            try:
                headers = response.headers
                reader = BodyReader(call, response.status, headers.get("Content-Encoding"), state.requests)
                reader.declared_length(headers.get("Content-Length"))
                stream = response.content
                while chunk := await stream.readany():
                    reader.feed(chunk)
                return response.status, headers, reader.content()
            except BaseException:
                response.close()  # a refused or cut-short body: its connection is not reused
                raise

    async def aclose(self) -> None:
        """Stop using the shared session (the last hook on this loop closes it)."""
        loop = asyncio.get_running_loop()
        client, self.client = self.client, None
        owner, self._loop = self._loop, None
        # A session of another (closed) loop is not released here: acquire() drops that loop's entry.
        if client is not None and owner is not None and owner() is loop:
            await shared_clients.release(self.api_url, client)
