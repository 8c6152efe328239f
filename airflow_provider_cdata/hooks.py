"""CDataHook: the one place that talks to the Powered by CData Connection Management API.

It reads the Airflow connection, mints and caches the JWT, owns the HTTP session, the route table, the
retry policy and the error type. Operators, the sensor and the trigger only call it.

The Airflow connection (type ``cdata``):

* ``host``: the API root. A full URL (``https://cloud.cdata.com/api``) is used as it is. A host without
  a scheme (what a URI-form connection such as ``cdata://parent:key@cloud.cdata.com/api`` gives) is
  taken as ``https://``, with the port and the URI path (Airflow's ``schema``) appended. A URL without
  a path gets CData's ``/api``; write a trailing ``/`` for a root that really is ``/``. Empty: CData's
  public API. Plain ``http://`` is refused unless the host is loopback or ``allow_insecure_http`` is set.
* ``login``: the parent (OEM) account id, the JWT ``iss``.
* ``password``: the parent's RSA private key (PEM); or the extra ``private_key_path``.
* extras: ``account_id`` (default child account, the JWT ``sub``), ``token_lifetime`` (seconds, default
  300), ``timeout`` (seconds, default 30), ``max_retries`` (default 5), ``allow_insecure_http``
  (default false). Extras may be strings (URI-form connections): they are coerced and checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import http
import importlib
import ipaddress
import json
import logging
import os
import random
import re
import ssl
import threading
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, NamedTuple
from urllib.parse import parse_qs, urlsplit, urlunsplit

import httpx
import requests
import tenacity

from airflow_provider_cdata import CONN_TYPE, DEFAULT_API_URL, DEFAULT_CONN_ID, __version__
from airflow_provider_cdata.auth import (
    Clock,
    KeyLoadError,
    LoadedKey,
    MintedToken,
    TokenMinter,
    cached_key,
    load_private_key,
)
from airflow_provider_cdata.exceptions import (
    CDataAPIError,
    CDataConfigError,
    CDataError,
    CDataValidationError,
)
from airflow_provider_cdata.validation import (
    validate_name,
    validate_optional_name,
    validate_redirect_url,
    validate_uuid,
)

try:  # Airflow 3.1+: hooks come from the Task SDK
    from airflow.sdk import BaseHook
except ImportError:  # pragma: no cover - Airflow 3.0
    from airflow.hooks.base import BaseHook  # type: ignore[attr-defined,no-redef]

try:
    from airflow.sdk.exceptions import AirflowNotFoundException
except ImportError:  # pragma: no cover - Airflow 3.0
    from airflow.exceptions import AirflowNotFoundException  # type: ignore[attr-defined]


def _find_mask_secret() -> Callable[[str], None]:
    """Airflow's ``mask_secret``, wherever this Airflow 3.x keeps it."""
    for module in (
        "airflow.sdk.log",
        "airflow.sdk.execution_time.secrets_masker",
        "airflow.utils.log.secrets_masker",
    ):
        try:
            found: Callable[[str], None] = importlib.import_module(module).mask_secret
        except (ImportError, AttributeError):
            continue
        return found
    raise ImportError("Airflow's mask_secret was not found")  # pragma: no cover


mask_secret = _find_mask_secret()
# Async variant (3.2+): in a trigger it tells the supervisor without blocking the event loop.
amask_secret: Callable[[str], Awaitable[None]] | None = getattr(
    importlib.import_module("airflow.sdk.log"), "amask_secret", None
)

# A stdlib logger, not self.log: Airflow routes stdlib records into task and triggerer logs (through its
# secrets masker), and they honour the usual logging levels, so DEBUG request lines can be switched on.
log = logging.getLogger(__name__)

DEFAULT_TOKEN_LIFETIME = 300
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_RETRIES = 5
TOKEN_LIFETIME_RANGE = (30, 3600)
MAX_RETRIES_LIMIT = 20
MAX_TIMEOUT = 600.0
SNIPPET_LENGTH = 200
SESSION_POOL_SIZE = 32  # keep-alive connections one hook's session keeps per host
# Connections (and requests in flight) of the async client all hooks on one event loop share. httpcore
# checks every open connection (a syscall each) whenever a request starts or ends, so fewer connections
# cost less CPU per request. 16 at ~150 ms per call still carry ~100 polls a second: 3,000 triggers at
# the sensor's default 30 s interval.
ASYNC_POOL_SIZE = 16
MAX_MASKED_TOKENS = 32  # minted tokens the async path registers with the masker per process (_MaskBudget)
USER_AGENT = f"airflow-provider-cdata/{__version__}"


class Route(NamedTuple):
    method: str
    path: str  # relative to the API root; {connection_id} is filled in with a validated UUID


# Every route the hook calls, in one place.
ROUTES: Final[Mapping[str, Route]] = MappingProxyType(
    {
        "create": Route("POST", "/poweredby/connection/create"),
        "edit": Route("POST", "/poweredby/connection/edit/{connection_id}"),
        "list": Route("GET", "/poweredby/connection/list"),
        "delete": Route("DELETE", "/poweredby/connection/delete/{connection_id}"),
        "clear_metadata": Route("DELETE", "/poweredby/connection/{connection_id}/metadata"),
    }
)


# -- the Airflow connection ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ConnectionSettings:
    """What the hook uses from the Airflow connection, checked and coerced."""

    api_url: str
    parent_id: str
    private_key: str | None = field(repr=False)
    private_key_path: str | None
    account_id: str | None
    token_lifetime: int = DEFAULT_TOKEN_LIFETIME
    timeout: float = DEFAULT_TIMEOUT
    max_retries: int = DEFAULT_MAX_RETRIES
    allow_insecure_http: bool = False


def settings_from_connection(conn: Any) -> ConnectionSettings:
    """Check an Airflow connection and turn it into :class:`ConnectionSettings` (no I/O)."""
    conn_id = getattr(conn, "conn_id", None) or "?"
    extra = _extra_dict(conn, conn_id)
    allow_insecure = _bool_extra(extra, "allow_insecure_http", False, conn_id)
    parent_id = conn.login
    if not isinstance(parent_id, str) or not parent_id.strip():
        raise CDataConfigError(
            f"Airflow connection '{conn_id}': login (the parent account id, the JWT iss) is empty", "login"
        )
    account_id = extra.get("account_id") or None
    if account_id is not None:
        try:
            account_id = validate_uuid(account_id, "account_id")
        except CDataValidationError as exc:
            raise CDataConfigError(f"Airflow connection '{conn_id}': extra {exc}", "account_id") from None
    key_path = extra.get("private_key_path") or None
    if key_path is not None and not isinstance(key_path, str):
        raise CDataConfigError(
            f"Airflow connection '{conn_id}': extra private_key_path must be a file path string",
            "private_key_path",
        )
    return ConnectionSettings(
        api_url=_api_url(conn, allow_insecure, conn_id),
        parent_id=parent_id.strip(),
        private_key=conn.password or None,
        private_key_path=key_path,
        account_id=account_id,
        token_lifetime=_int_extra(
            extra, "token_lifetime", DEFAULT_TOKEN_LIFETIME, TOKEN_LIFETIME_RANGE, conn_id
        ),
        timeout=_timeout_extra(extra, conn_id),
        max_retries=_int_extra(extra, "max_retries", DEFAULT_MAX_RETRIES, (0, MAX_RETRIES_LIMIT), conn_id),
        allow_insecure_http=allow_insecure,
    )


def _extra_dict(conn: Any, conn_id: str) -> dict[str, Any]:
    raw = conn.extra
    if not raw:
        return {}
    try:
        extra = json.loads(raw) if isinstance(raw, str) else dict(raw)
    except (ValueError, TypeError):
        raise CDataConfigError(
            f"Airflow connection '{conn_id}': extra is not a JSON object", "extra"
        ) from None
    if not isinstance(extra, dict):
        raise CDataConfigError(f"Airflow connection '{conn_id}': extra is not a JSON object", "extra")
    return extra


def _int_extra(extra: dict[str, Any], name: str, default: int, bounds: tuple[int, int], conn_id: str) -> int:
    raw = extra.get(name)
    if raw is None or raw == "":
        return default
    low, high = bounds
    value: int | None = None
    if isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    elif (isinstance(raw, float) and raw.is_integer()) or (
        isinstance(raw, str) and re.fullmatch(r"\s*-?\d+\s*", raw)
    ):
        value = int(raw)
    if value is None or not low <= value <= high:
        kind = "a positive integer" if low > 0 else "a non-negative integer"
        raise CDataConfigError(
            f"Airflow connection '{conn_id}': extra {name} must be {kind} between {low} and {high}, "
            f"got {raw!r}",
            name,
        )
    return value


def _timeout_extra(extra: dict[str, Any], conn_id: str) -> float:
    raw = extra.get("timeout")
    if raw is None or raw == "":
        return DEFAULT_TIMEOUT
    try:
        value = float(raw) if not isinstance(raw, bool) else -1.0
    except (TypeError, ValueError):
        value = -1.0
    if not 0 < value <= MAX_TIMEOUT:
        raise CDataConfigError(
            f"Airflow connection '{conn_id}': extra timeout must be a positive number of seconds "
            f"(at most {MAX_TIMEOUT:g}), got {raw!r}",
            "timeout",
        )
    return value


def _bool_extra(extra: dict[str, Any], name: str, default: bool, conn_id: str) -> bool:
    raw = extra.get(name)
    if raw is None or raw == "":
        return default
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise CDataConfigError(
        f"Airflow connection '{conn_id}': extra {name} must be true or false, got {raw!r}", name
    )


def _api_url(conn: Any, allow_insecure_http: bool, conn_id: str) -> str:
    host = (conn.host or "").strip()
    if not host:
        return DEFAULT_API_URL
    try:
        parts = urlsplit(host if "://" in host else f"https://{host}")
        hostname, port = parts.hostname, parts.port
    except ValueError:
        raise CDataConfigError(f"Airflow connection '{conn_id}': host is not a valid URL", "host") from None
    if parts.scheme not in ("http", "https") or not hostname:
        raise CDataConfigError(
            f"Airflow connection '{conn_id}': host must be an http(s) URL such as {DEFAULT_API_URL}", "host"
        )
    if parts.username or parts.password or parts.query or parts.fragment:
        raise CDataConfigError(
            f"Airflow connection '{conn_id}': host must be a plain API URL, without credentials, "
            "query or fragment",
            "host",
        )
    if parts.scheme == "http" and not allow_insecure_http and not _is_loopback(hostname):
        raise CDataConfigError(
            f"Airflow connection '{conn_id}': host {hostname} uses plain http://, which would send the "
            "bearer token in clear; use https://, or set the extra allow_insecure_http to true",
            "host",
        )
    netloc = parts.netloc
    if port is None and conn.port:
        netloc = f"{netloc}:{int(conn.port)}"
    path = parts.path or f"/{(conn.schema or 'api').strip('/')}"
    return urlunsplit((parts.scheme, netloc, path.rstrip("/"), "", ""))


def _is_loopback(hostname: str) -> bool:
    if hostname.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


# -- one request, and what came back ------------------------------------------------------------------
@dataclass(frozen=True)
class _Call:
    """One API call, its arguments already validated."""

    route: Route
    path: str
    account_id: str
    json: dict[str, Any] | None = None
    params: dict[str, str] | None = None

    @property
    def method(self) -> str:
        return self.route.method


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: Mapping[str, str]  # requests' and httpx's header maps are both case-insensitive
    content: bytes
    attempts: int


@dataclass
class _CallState:
    """What one call has done so far, across retries."""

    requests: int = 0
    reminted: bool = False
    tokens: list[str] = field(default_factory=list)  # every token sent, scrubbed from error messages


def _scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _snippet(text: str) -> str:
    text = re.sub(r"(?is)<(head|script|style)\b.*?</\1>", " ", text)
    text = re.sub(r"<[^>]*>", " ", text)
    text = " ".join(text.split())
    return text if len(text) <= SNIPPET_LENGTH else f"{text[: SNIPPET_LENGTH - 3]}..."


def _json_or_none(content: bytes) -> Any:
    try:
        return json.loads(content)
    except (ValueError, RecursionError):  # RecursionError: JSON nested deeper than Python's stack
        return None


def _error_message(answer: _Answer, secrets: list[str]) -> str:
    """CData's message from a JSON error body, or a short snippet of any other body.

    Tokens are scrubbed from the whole body first, so a cut snippet cannot keep part of one.
    """
    text = _scrub(answer.content.decode("utf-8", errors="replace"), secrets)
    body = _json_or_none(text.encode()) if text else None
    if isinstance(body, dict):
        error = body.get("error")
        candidates = [
            error.get("message") if isinstance(error, dict) else None,
            body.get("message"),
            error,
            body.get("detail"),
            body.get("title"),
        ]
        for candidate in candidates:
            if isinstance(candidate, str) and candidate.strip():
                return _snippet(candidate)
        return _snippet(json.dumps(body))
    if text.strip():
        return _snippet(text)
    try:
        return http.HTTPStatus(answer.status).phrase
    except ValueError:
        return ""


def _retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds from now: a number of seconds, or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _raise_for_status(call: _Call, answer: _Answer, state: _CallState) -> None:
    if 200 <= answer.status < 300:
        return
    message = _error_message(answer, state.tokens)
    error = CDataAPIError(call.method, call.path, answer.status, message, answer.attempts)
    error.retry_after = _retry_after_seconds(answer.headers.get("retry-after"))
    raise error


def _network_error(call: _Call, exc: BaseException, state: _CallState) -> CDataAPIError:
    """A failure with no HTTP answer: refused, reset, timed out, cut short, or a TLS failure."""
    tls = _is_tls_failure(exc)
    if tls:
        kind = "TLS failure"
    elif isinstance(exc, requests.Timeout | httpx.TimeoutException):
        kind = "timed out"
    elif isinstance(exc, requests.exceptions.ChunkedEncodingError | httpx.RemoteProtocolError):
        kind = "connection closed or answer cut short"
    else:
        kind = "connection error"
    detail = _snippet(_scrub(str(exc), state.tokens)) or type(exc).__name__
    error = CDataAPIError(call.method, call.path, None, f"{kind}: {detail}", state.requests)
    # A certificate that does not verify will not verify on the next try either.
    error.retryable = not tls
    return error


def _is_tls_failure(exc: BaseException | None) -> bool:
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, ssl.SSLError | requests.exceptions.SSLError):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def _json_body(call: _Call, answer: _Answer, promise: str) -> Any:
    body = _json_or_none(answer.content)
    if body is None:
        raise CDataAPIError(
            call.method,
            call.path,
            answer.status,
            f"answered {answer.status} but the body is not the JSON with {promise} the route promises: "
            f"{_snippet(answer.content.decode('utf-8', errors='replace')) or 'empty body'}",
            answer.attempts,
        )
    return body


def _decode_connect_url(call: _Call, answer: _Answer) -> str:
    body = _json_body(call, answer, "a redirectURL")
    url = body.get("redirectURL") if isinstance(body, dict) else None
    if not isinstance(url, str) or not url:
        raise CDataAPIError(
            call.method,
            call.path,
            answer.status,
            f"answered {answer.status} without a redirectURL string in its JSON body",
            answer.attempts,
        )
    return url


def _decode_connections(call: _Call, answer: _Answer) -> list[dict[str, Any]]:
    body = _json_body(call, answer, "a connections list")
    connections = body.get("connections") if isinstance(body, dict) else None
    if not isinstance(connections, list) or not all(isinstance(c, dict) for c in connections):
        raise CDataAPIError(
            call.method,
            call.path,
            answer.status,
            f"answered {answer.status} without a connections list of objects in its JSON body",
            answer.attempts,
        )
    return connections


def _connect_url_tokens(url: str) -> list[str]:
    """The bearer tokens inside a connect URL (its ``token`` query value), to be masked."""
    try:
        query = parse_qs(urlsplit(url).query)
    except ValueError:
        return []
    return [token for token in query.get("token", []) if token]


def mask_connect_url(url: str) -> str:
    """Register the token inside a connect URL with Airflow's secrets masker; return the URL unchanged.

    The hook does this in the task that receives the URL. A task that gets the URL from XCom runs in
    another process, whose masker has never seen the token: call this before logging or sending it.
    """
    for token in _connect_url_tokens(url):
        mask_secret(token)
    return url


# -- the retry policy ---------------------------------------------------------------------------------
def _is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, CDataAPIError) and exc.retryable


@dataclass(frozen=True)
class RetryPolicy:
    """The one retry policy, used by the sync and the async calls alike.

    Retried: no answer (connection errors, timeouts, cut-short bodies) and 429, 500, 502, 503, 504, up
    to ``max_retries`` times. ``Retry-After`` is honoured up to ``retry_after_cap`` seconds; otherwise
    the wait doubles from ``backoff_base`` up to ``backoff_max``, with jitter (50-100 % of the step).
    """

    backoff_base: float = 0.5
    backoff_max: float = 30.0
    retry_after_cap: float = 60.0

    def wait_seconds(self, error: BaseException | None, retry_number: int) -> float:
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            return min(float(retry_after), self.retry_after_cap)
        step = min(self.backoff_max, self.backoff_base * 2.0 ** (retry_number - 1))
        return step * random.uniform(0.5, 1.0)

    def _options(self, max_retries: int, logger: logging.Logger) -> dict[str, Any]:
        def wait(state: tenacity.RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            return self.wait_seconds(error, state.attempt_number)

        def before_sleep(state: tenacity.RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            if isinstance(error, CDataAPIError):
                what = f"HTTP {error.status_code}" if error.status_code is not None else error.message
                logger.warning(
                    "CData API %s %s: %s; retry %d of %d in %.2f s",
                    error.method,
                    error.route,
                    what,
                    state.attempt_number,
                    max_retries,
                    state.upcoming_sleep,
                )

        return {
            "stop": tenacity.stop_after_attempt(max_retries + 1),
            "wait": wait,
            "retry": tenacity.retry_if_exception(_is_retryable),
            "before_sleep": before_sleep,
            "reraise": True,
        }

    def retrying(self, max_retries: int, logger: logging.Logger) -> tenacity.Retrying:
        return tenacity.Retrying(**self._options(max_retries, logger))

    def async_retrying(self, max_retries: int, logger: logging.Logger) -> tenacity.AsyncRetrying:
        return tenacity.AsyncRetrying(**self._options(max_retries, logger))


# -- async clients shared per event loop --------------------------------------------------------------
class _SharedAsyncClients:
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
                client, users = _new_async_client(), 0
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


def _new_async_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(
        headers={"User-Agent": f"{USER_AGENT} httpx/{httpx.__version__}", "Accept": "application/json"},
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
async def _request_slot(client: httpx.AsyncClient, timeout: float) -> AsyncIterator[None]:
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


_async_clients = _SharedAsyncClients()


def _new_session(api_url: str) -> requests.Session:
    session = requests.Session()
    # What requests would read from the environment on every call (the proxy variables, scanned twice,
    # and ~/.netrc: ~0.3 ms of a ~1.3 ms call on a 2-core box), read once for the one host this session
    # talks to. Also: a ~/.netrc entry for that host can no longer replace the bearer token.
    session.proxies = requests.utils.get_environ_proxies(api_url)
    session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    session.trust_env = False
    # Room for ClearMetadataOperator's threads: beyond the pool size urllib3 would open and discard a
    # new connection per call.
    adapter = requests.adapters.HTTPAdapter(pool_maxsize=SESSION_POOL_SIZE)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers.update(
        {"User-Agent": f"{USER_AGENT} python-requests/{requests.__version__}", "Accept": "application/json"}
    )
    return session


async def _amask(secret: str) -> None:
    if amask_secret is not None:
        await amask_secret(secret)
    else:  # pragma: no cover - Airflow before 3.2
        mask_secret(secret)


class _MaskBudget:
    """How many minted tokens the async calls (the triggerer's) register with Airflow's secrets masker.

    The masker compiles one regex of every secret it holds, again for each new one: ~1 ms with one
    secret, ~60 ms with 100, ~1.2 s with 500 (2-core box). A triggerer is one long-lived process that
    waits for many customers: with 150 child accounts (one token each, renewed every ~4 minutes) its
    event loop froze for 19 s (benchmarks/, figure 4), and the regex only grows. So the async path
    registers the first ``size`` minted tokens of a process; later ones are kept out of its logs by
    Airflow's own JWT redaction (its log processors replace every ``eyJ...`` run, since Airflow 3.0),
    which is how Airflow keeps its own rotating task tokens out of logs. The sync calls run in task
    processes, which live for one task: they register every minted token, and every connect-URL token
    is registered on both paths.
    """

    def __init__(self, size: int) -> None:
        self._lock = threading.Lock()
        self.size = size
        self.used = 0

    def take(self) -> bool:
        with self._lock:
            if self.used >= self.size:
                return False
            self.used += 1
            return True

    def reset(self) -> None:
        """Start counting again (with the masker's own reset, e.g. between tests)."""
        with self._lock:
            self.used = 0


token_mask_budget = _MaskBudget(MAX_MASKED_TOKENS)


# -- the hook -----------------------------------------------------------------------------------------
class CDataHook(BaseHook):
    """Talk to the Powered by CData Connection Management API with an Airflow connection of type ``cdata``.

    :param cdata_conn_id: the Airflow connection id (default ``cdata_default``)
    :param account_id: the child account (JWT ``sub``) for calls that do not name one; default: the
        connection's extra ``account_id``
    """

    conn_name_attr = "cdata_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = CONN_TYPE
    hook_name = "Powered by CData"

    # Shared by every hook; tests may replace it with one that backs off faster.
    retry_policy: RetryPolicy = RetryPolicy()

    def __init__(self, cdata_conn_id: str = DEFAULT_CONN_ID, account_id: str | None = None) -> None:
        super().__init__()
        self.cdata_conn_id = validate_name(cdata_conn_id, "cdata_conn_id")
        self.account_id = validate_uuid(account_id, "account_id") if account_id is not None else None
        # Epoch seconds for token minting; tests move it instead of sleeping.
        self.clock: Clock = time.time
        self._settings: ConnectionSettings | None = None
        self._minter: TokenMinter | None = None
        self._session: requests.Session | None = None
        self._async_client: httpx.AsyncClient | None = None
        self._async_loop: weakref.ref[asyncio.AbstractEventLoop] | None = None
        # ClearMetadataOperator calls one hook from several threads: one connection read, one session.
        self._init_lock = threading.Lock()

    # -- public sync API ---------------------------------------------------------------------------
    def create_connection(
        self,
        data_source: str,
        redirect_url: str,
        name: str | None = None,
        external_id: str | None = None,
        account_id: str | None = None,
    ) -> str:
        """Ask CData for a connect URL where the customer creates a ``data_source`` connection."""
        body = _create_body(data_source, redirect_url, name, external_id)
        call = self._call(self._ready(), "create", account_id, json=body)
        return self._connect_url(_decode_connect_url(call, self._request(call)))

    def edit_connection(self, connection_id: str, redirect_url: str, account_id: str | None = None) -> str:
        """Ask CData for a connect URL where the customer edits connection ``connection_id``."""
        connection_id = validate_uuid(connection_id, "connection_id")
        body = {"redirectURL": validate_redirect_url(redirect_url, "redirect_url")}
        call = self._call(self._ready(), "edit", account_id, connection_id=connection_id, json=body)
        return self._connect_url(_decode_connect_url(call, self._request(call)))

    def list_connections(
        self, account_id: str | None = None, data_source: str | None = None, external_id: str | None = None
    ) -> list[dict[str, Any]]:
        """The child account's connections, optionally only one data source or one external id."""
        params = _list_params(data_source, external_id)
        call = self._call(self._ready(), "list", account_id, params=params)
        return _decode_connections(call, self._request(call))

    def delete_connection(self, connection_id: str, account_id: str | None = None) -> None:
        """Delete a connection (CData answers 200 for an unknown id too)."""
        connection_id = validate_uuid(connection_id, "connection_id")
        self._request(self._call(self._ready(), "delete", account_id, connection_id=connection_id))

    def clear_metadata(self, connection_id: str, account_id: str | None = None) -> None:
        """Clear the metadata cache of a connection."""
        connection_id = validate_uuid(connection_id, "connection_id")
        self._request(self._call(self._ready(), "clear_metadata", account_id, connection_id=connection_id))

    def test_connection(self) -> tuple[bool, str]:
        """One authenticated List Connections call, without retries; never raises."""
        settings: ConnectionSettings | None = None
        try:
            settings = self._ready()
            call = self._call(settings, "list", None)
            count = len(_decode_connections(call, self._request(call, max_retries=0, remint=False)))
        except CDataAPIError as exc:
            return False, _diagnose(exc, settings)
        except CDataError as exc:
            return False, str(exc)
        except Exception as exc:  # the UI's "Test" button must get an answer, whatever happened
            return False, f"Unexpected {type(exc).__name__} while testing the CData connection"
        return (
            True,
            f"Connected to {settings.api_url}: {count} connections visible to account {call.account_id}",
        )

    def close(self) -> None:
        """Close the HTTP session (its keep-alive connections)."""
        if self._session is not None:
            self._session.close()
            self._session = None

    # -- public async API (the trigger's) ----------------------------------------------------------
    async def acreate_connection(
        self,
        data_source: str,
        redirect_url: str,
        name: str | None = None,
        external_id: str | None = None,
        account_id: str | None = None,
    ) -> str:
        body = _create_body(data_source, redirect_url, name, external_id)
        call = self._call(await self._aready(), "create", account_id, json=body)
        return await self._aconnect_url(_decode_connect_url(call, await self._arequest(call)))

    async def aedit_connection(
        self, connection_id: str, redirect_url: str, account_id: str | None = None
    ) -> str:
        connection_id = validate_uuid(connection_id, "connection_id")
        body = {"redirectURL": validate_redirect_url(redirect_url, "redirect_url")}
        call = self._call(await self._aready(), "edit", account_id, connection_id=connection_id, json=body)
        return await self._aconnect_url(_decode_connect_url(call, await self._arequest(call)))

    async def alist_connections(
        self, account_id: str | None = None, data_source: str | None = None, external_id: str | None = None
    ) -> list[dict[str, Any]]:
        params = _list_params(data_source, external_id)
        call = self._call(await self._aready(), "list", account_id, params=params)
        return _decode_connections(call, await self._arequest(call))

    async def adelete_connection(self, connection_id: str, account_id: str | None = None) -> None:
        connection_id = validate_uuid(connection_id, "connection_id")
        call = self._call(await self._aready(), "delete", account_id, connection_id=connection_id)
        await self._arequest(call)

    async def aclear_metadata(self, connection_id: str, account_id: str | None = None) -> None:
        connection_id = validate_uuid(connection_id, "connection_id")
        call = self._call(await self._aready(), "clear_metadata", account_id, connection_id=connection_id)
        await self._arequest(call)

    async def aclose(self) -> None:
        """Stop using the shared async client (the last hook on this loop closes it)."""
        loop = asyncio.get_running_loop()
        client, self._async_client = self._async_client, None
        owner, self._async_loop = self._async_loop, None
        # A client of another (closed) loop is not released here: acquire() drops that loop's entry.
        if client is not None and self._settings is not None and owner is not None and owner() is loop:
            await _async_clients.release(self._settings.api_url, client)

    # -- introspection for tests and benchmarks ----------------------------------------------------
    @property
    def settings(self) -> ConnectionSettings:
        """The checked connection settings (reads the Airflow connection on first use)."""
        return self._ready()

    @property
    def tokens_minted(self) -> int:
        """Tokens this hook has minted (cached tokens reused are not counted)."""
        return self._minter.minted if self._minter is not None else 0

    # -- reading the connection and the key --------------------------------------------------------
    def _ready(self) -> ConnectionSettings:
        if self._settings is None:
            with self._init_lock:
                if self._settings is None:
                    settings = settings_from_connection(self._get_airflow_connection())
                    self._install(settings, _load_key(settings))
        assert self._settings is not None
        return self._settings

    async def _aready(self) -> ConnectionSettings:
        if self._settings is None:
            settings = settings_from_connection(await self._aget_airflow_connection())
            # Loading a key costs ~50 ms of CPU (and a file read): off the event loop, unless cached.
            key = cached_key(settings.private_key) if settings.private_key else None
            if key is None:
                key = await asyncio.to_thread(_load_key, settings)
            self._install(settings, key)
        assert self._settings is not None
        return self._settings

    def _get_airflow_connection(self) -> Any:
        try:
            return self.get_connection(self.cdata_conn_id)
        except AirflowNotFoundException:
            raise _missing_connection(self.cdata_conn_id) from None

    async def _aget_airflow_connection(self) -> Any:
        try:
            if hasattr(BaseHook, "aget_connection"):
                return await self.aget_connection(self.cdata_conn_id)
            return await asyncio.to_thread(self.get_connection, self.cdata_conn_id)  # pragma: no cover
        except AirflowNotFoundException:
            raise _missing_connection(self.cdata_conn_id) from None

    def _install(self, settings: ConnectionSettings, key: LoadedKey) -> None:
        self._minter = TokenMinter(
            key,
            settings.parent_id,
            settings.token_lifetime,
            clock=lambda: self.clock(),
            scope=settings.api_url,
        )
        self._settings = settings

    def _call(
        self,
        settings: ConnectionSettings,
        route_name: str,
        account_id: str | None,
        *,
        connection_id: str | None = None,
        json: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> _Call:
        route = ROUTES[route_name]
        path = route.path.format(connection_id=connection_id) if connection_id else route.path
        account = self._account(settings, account_id)
        return _Call(route=route, path=path, account_id=account, json=json, params=params)

    def _account(self, settings: ConnectionSettings, account_id: str | None) -> str:
        if account_id is not None:
            return validate_uuid(account_id, "account_id")
        account = self.account_id or settings.account_id
        if account is None:
            raise CDataValidationError(
                "account_id",
                "account_id is needed: pass account_id, or set the extra account_id of the Airflow "
                f"connection '{self.cdata_conn_id}'",
            )
        return account

    # -- sync transport ----------------------------------------------------------------------------
    def _request(self, call: _Call, max_retries: int | None = None, remint: bool = True) -> _Answer:
        settings = self._ready()
        retries = settings.max_retries if max_retries is None else max_retries
        state = _CallState()
        for attempt in self.retry_policy.retrying(retries, log):
            with attempt:
                answer = self._attempt(call, state, remint)
        return answer

    def _attempt(self, call: _Call, state: _CallState, remint: bool) -> _Answer:
        answer = self._send(call, self._token(call.account_id, renew=False), state)
        if answer.status == 401 and remint and not state.reminted:
            # The server rejected a token we thought valid (its clock, a re-registered key): one new
            # token, one more try.
            state.reminted = True
            answer = self._send(call, self._token(call.account_id, renew=True), state)
        _raise_for_status(call, answer, state)
        return answer

    def _token(self, account_id: str, renew: bool) -> str:
        assert self._minter is not None
        minted = self._minter.renew(account_id) if renew else self._minter.token(account_id)
        if minted.fresh:  # a task process mints a few: every one goes to the masker
            mask_secret(minted.token)
        return minted.token

    def _http(self) -> requests.Session:
        if self._session is None:
            api_url = self._ready().api_url  # before the lock: _ready() takes it too
            with self._init_lock:  # threads racing here would each make a session, and connections
                if self._session is None:
                    self._session = _new_session(api_url)
        return self._session

    def _send(self, call: _Call, token: str, state: _CallState) -> _Answer:
        settings = self._ready()
        state.requests += 1
        state.tokens.append(token)
        started = time.monotonic()
        try:
            response = self._http().request(
                call.method,
                settings.api_url + call.path,
                json=call.json,
                params=call.params,
                headers={"Authorization": f"Bearer {token}"},
                timeout=(settings.timeout, settings.timeout),
                allow_redirects=False,
            )
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
            self._log_request(call, type(exc).__name__, started, state)
            raise _network_error(call, exc, state) from None
        self._log_request(call, response.status_code, started, state)
        return _Answer(response.status_code, response.headers, response.content, state.requests)

    def _log_request(self, call: _Call, outcome: object, started: float, state: _CallState) -> None:
        # Method, route, outcome, time and attempt only: never headers, tokens or full URLs.
        log.debug(
            "CData API %s %s -> %s in %.1f ms (attempt %d)",
            call.method,
            call.path,
            outcome,
            (time.monotonic() - started) * 1000,
            state.requests,
        )

    def _connect_url(self, url: str) -> str:
        return mask_connect_url(url)

    # -- async transport ---------------------------------------------------------------------------
    async def _arequest(self, call: _Call, max_retries: int | None = None, remint: bool = True) -> _Answer:
        settings = await self._aready()
        retries = settings.max_retries if max_retries is None else max_retries
        state = _CallState()
        async for attempt in self.retry_policy.async_retrying(retries, log):
            with attempt:
                answer = await self._aattempt(call, state, remint)
        return answer

    async def _aattempt(self, call: _Call, state: _CallState, remint: bool) -> _Answer:
        answer = await self._asend(call, await self._atoken(call.account_id, renew=False), state)
        if answer.status == 401 and remint and not state.reminted:
            state.reminted = True
            answer = await self._asend(call, await self._atoken(call.account_id, renew=True), state)
        _raise_for_status(call, answer, state)
        return answer

    async def _atoken(self, account_id: str, renew: bool) -> str:
        assert self._minter is not None
        minted: MintedToken = self._minter.renew(account_id) if renew else self._minter.token(account_id)
        if minted.fresh and token_mask_budget.take():
            await _amask(minted.token)
        return minted.token

    def _ahttp(self, api_url: str) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if (
            self._async_client is None
            or self._async_client.is_closed
            or self._async_loop is None
            or self._async_loop() is not loop
        ):
            # First use, or this hook moved to another event loop (a client cannot outlive its loop).
            self._async_client = _async_clients.acquire(api_url)
            self._async_loop = weakref.ref(loop)
        return self._async_client

    async def _asend(self, call: _Call, token: str, state: _CallState) -> _Answer:
        settings = await self._aready()
        state.requests += 1
        state.tokens.append(token)
        started = time.monotonic()
        client = self._ahttp(settings.api_url)
        try:
            async with _request_slot(client, settings.timeout):
                response = await client.request(
                    call.method,
                    settings.api_url + call.path,
                    json=call.json,
                    params=call.params,
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=settings.timeout,
                )
        except httpx.TransportError as exc:
            self._log_request(call, type(exc).__name__, started, state)
            raise _network_error(call, exc, state) from None
        self._log_request(call, response.status_code, started, state)
        return _Answer(response.status_code, response.headers, response.content, state.requests)

    async def _aconnect_url(self, url: str) -> str:
        for token in _connect_url_tokens(url):
            await _amask(token)
        return url


def _create_body(
    data_source: str, redirect_url: str, name: str | None, external_id: str | None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "dataSource": validate_name(data_source, "data_source"),
        "redirectURL": validate_redirect_url(redirect_url, "redirect_url"),
    }
    if (checked_name := validate_optional_name(name, "name")) is not None:
        body["name"] = checked_name
    if (checked_external_id := validate_optional_name(external_id, "external_id")) is not None:
        body["externalId"] = checked_external_id
    return body


def _list_params(data_source: str | None, external_id: str | None) -> dict[str, str] | None:
    params: dict[str, str] = {}
    if (driver := validate_optional_name(data_source, "data_source")) is not None:
        params["driver"] = driver
    if (checked_external_id := validate_optional_name(external_id, "external_id")) is not None:
        params["externalId"] = checked_external_id
    return params or None


def _load_key(settings: ConnectionSettings) -> LoadedKey:
    try:
        return load_private_key(settings.private_key, settings.private_key_path)
    except KeyLoadError as exc:
        raise CDataConfigError(f"CData private key: {exc}", exc.field) from None


def _missing_connection(conn_id: str) -> CDataConfigError:
    return CDataConfigError(
        f"Airflow connection '{conn_id}' is not defined: create a connection of type '{CONN_TYPE}'",
        "cdata_conn_id",
    )


def _diagnose(exc: CDataAPIError, settings: ConnectionSettings | None) -> str:
    where = settings.api_url if settings else "the CData API"
    if exc.status_code in (401, 403):
        parent = f" ({settings.parent_id})" if settings else ""
        return (
            f"{exc}. CData refused the token: check that the parent's public key is registered with "
            f"CData, that login is the parent account id{parent}, that account_id is a child account of "
            "that parent, and that this machine's clock is right (tokens carry iat and exp)."
        )
    if exc.status_code is None:
        return f"Could not reach {where}: {exc.message}. Check the host, the network or proxy, and TLS."
    return str(exc)
