"""The sync transport (task processes): one ``requests.Session`` per hook, and one request on it.

The connection's ``timeout`` bounds each attempt as a whole. ``requests`` and ``urllib3`` only bound
each socket operation (a server trickling a byte every 0.2 s would hold a call for ever), so the
session's connections read their answers through :class:`DeadlineReader`, which gives every read of
the status line, the headers and the body only what is left of the attempt's time.
"""

from __future__ import annotations

import http.client
import io
import logging
import socket
import threading
import time
from typing import Any

import requests
import urllib3

from airflow_provider_cdata import SESSION_POOL_SIZE
from airflow_provider_cdata.exceptions import CDataAPIError
from airflow_provider_cdata.transport.answers import network_error
from airflow_provider_cdata.transport.body import ACCEPT_ENCODING, READ_CHUNK, BodyReader
from airflow_provider_cdata.transport.routes import USER_AGENT, Answer, Call, CallState, log_request
from airflow_provider_cdata.transport.tls import ca_bundle

# The monotonic time by which the current thread's attempt must be over (None: not in an attempt).
_attempt = threading.local()


class DeadlineReader(io.RawIOBase):
    """A socket's reads, each one given only the time left until ``deadline``; then ``timed out``."""

    def __init__(self, raw: socket.SocketIO, sock: socket.socket, deadline: float) -> None:
        super().__init__()
        self._raw = raw
        self._sock = sock
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("timed out: the attempt's time is up")
        self._sock.settimeout(remaining)
        return self._raw.readinto(buffer)

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


class _DeadlineSocket:
    """What ``http.client.HTTPResponse`` is given instead of the socket: its ``makefile`` bounds reads."""

    __slots__ = ("deadline", "sock")

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline

    def makefile(self, mode: str) -> io.BufferedReader:  # http.client asks for "rb", the only mode
        raw = self.sock.makefile("rb", buffering=0)
        return io.BufferedReader(DeadlineReader(raw, self.sock, self.deadline))


class _DeadlineResponse(http.client.HTTPResponse):
    def __init__(self, sock: Any, *args: Any, **kwargs: Any) -> None:
        deadline = getattr(_attempt, "deadline", None)
        # A plain or TLS socket; anything else (TLS inside a TLS proxy tunnel) keeps its per-read timeouts.
        if deadline is not None and isinstance(sock, socket.socket):
            sock = _DeadlineSocket(sock, deadline)
        super().__init__(sock, *args, **kwargs)


class _HTTPConnection(urllib3.connection.HTTPConnection):
    response_class = _DeadlineResponse


class _HTTPSConnection(urllib3.connection.HTTPSConnection):
    response_class = _DeadlineResponse


class _HTTPConnectionPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSConnectionPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOL_CLASSES = {"http": _HTTPConnectionPool, "https": _HTTPSConnectionPool}


class BoundedAdapter(requests.adapters.HTTPAdapter):
    """An adapter whose pools (direct or through an HTTP proxy) bound each answer's reads by a deadline."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOL_CLASSES

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> urllib3.PoolManager:
        manager: urllib3.PoolManager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if manager.pool_classes_by_scheme is urllib3.poolmanager.pool_classes_by_scheme:  # not SOCKS
            manager.pool_classes_by_scheme = _POOL_CLASSES
        return manager


def new_session(api_url: str) -> requests.Session:
    session = requests.Session()
    # What requests would read from the environment on every call (the proxy variables, scanned twice,
    # and ~/.netrc: ~0.3 ms of a ~1.3 ms call on a 2-core box), read once for the one host this session
    # talks to. Also: a ~/.netrc entry for that host can no longer replace the bearer token.
    session.proxies = requests.utils.get_environ_proxies(api_url)
    session.verify = ca_bundle()
    session.trust_env = False
    # Room for ClearMetadataOperator's threads: beyond the pool size urllib3 would open and discard a
    # new connection per call.
    adapter = BoundedAdapter(pool_maxsize=SESSION_POOL_SIZE)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers.update(
        {
            "User-Agent": f"{USER_AGENT} python-requests/{requests.__version__}",
            "Accept": "application/json",
            "Accept-Encoding": ACCEPT_ENCODING,
        }
    )
    return session


class SyncTransport:
    """Sends one request of a call to ``api_url`` on a session made on first use, shared by threads.

    A request is prepared here and handed to the session's adapter, not sent with
    ``Session.request``: that would merge the session's settings into every call (headers, params,
    cookies, hooks, the environment) and parse cookies out of every answer, ~15 % of a call's CPU
    here (benchmarks/, figure 7), for settings that are fixed when the session is made and cookies
    CData does not use. What is sent is the same: the session's headers, the bearer token, the JSON
    body and the query; the adapter's proxies and CA bundle are the session's, read once.
    """

    def __init__(self, api_url: str, timeout: float, logger: logging.Logger) -> None:
        self.api_url = api_url
        self.timeout = timeout
        self._logger = logger
        self._lock = threading.Lock()
        self._session: requests.Session | None = None
        self._adapter: requests.adapters.BaseAdapter | None = None

    @property
    def session(self) -> requests.Session:
        if self._session is None:
            with self._lock:  # threads racing here would each make a session, and connections
                if self._session is None:
                    session = new_session(self.api_url)
                    self._adapter = session.get_adapter(self.api_url)
                    self._session = session
        return self._session

    def _prepare(self, session: requests.Session, call: Call, token: str) -> requests.PreparedRequest:
        """What ``Session.request`` would send for this call (there are no cookies, auth or hooks)."""
        headers = dict(session.headers)
        headers["Authorization"] = f"Bearer {token}"
        prepared = requests.PreparedRequest()
        prepared.prepare_method(call.method)
        prepared.prepare_url(self.api_url + call.path, call.params)
        prepared.prepare_headers(headers)
        prepared.prepare_body(None, None, call.json)
        return prepared

    def send(self, call: Call, token: str, state: CallState) -> Answer:
        """One attempt: connect, send, wait and read the whole body within ``timeout`` seconds."""
        started = state.sending(token)
        _attempt.deadline = started + self.timeout
        session = self.session
        assert self._adapter is not None
        try:
            response = self._adapter.send(
                self._prepare(session, call, token),
                stream=True,
                timeout=(self.timeout, self.timeout),  # what remains: the attempt has just begun
                verify=True if session.verify is None else session.verify,
                cert=session.cert,
                proxies=session.proxies,
            )
            try:
                content = _read_body(call, response, state)
            finally:
                response.close()
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
            log_request(self._logger, call, type(exc).__name__, started, state)
            raise network_error(call, exc, state) from None
        except CDataAPIError:  # the body: too large, or it does not decode
            log_request(self._logger, call, "refused body", started, state)
            raise
        finally:
            _attempt.deadline = None
        log_request(self._logger, call, response.status_code, started, state)
        return Answer(response.status_code, response.headers, content, state.requests)

    def close(self) -> None:
        """Close the session (its keep-alive connections); a later request makes a new one."""
        if self._session is not None:
            self._session.close()
            self._session = None
            self._adapter = None


def _read_body(call: Call, response: requests.Response, state: CallState) -> bytes:
    """The body, decoded by :class:`BodyReader` as it arrives; urllib3's errors as requests' own."""
    headers = response.headers
    reader = BodyReader(call, response.status_code, headers.get("content-encoding"), state.requests)
    reader.declared_length(headers.get("content-length"))
    try:
        for chunk in response.raw.stream(READ_CHUNK, decode_content=False):
            reader.feed(chunk)
    except urllib3.exceptions.ReadTimeoutError as exc:
        raise requests.ReadTimeout(exc) from exc
    except urllib3.exceptions.SSLError as exc:
        raise requests.exceptions.SSLError(exc) from exc
    except urllib3.exceptions.ProtocolError as exc:
        raise requests.exceptions.ChunkedEncodingError(exc) from exc
    except urllib3.exceptions.HTTPError as exc:
        raise requests.ConnectionError(exc) from exc
    return reader.content()
