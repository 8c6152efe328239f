"""What came back, turned into a value or a :class:`~airflow_provider_cdata.exceptions.CDataAPIError`.

Error messages keep CData's own message (or a short snippet of any other body) and never a token:
every snippet, of every answer and every failure, is made by :func:`snippet`, which scrubs first
(see :func:`scrub`) and cuts after.
"""

from __future__ import annotations

import email.utils
import http
import json
import re
import ssl
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3

from airflow_provider_cdata.connection import is_loopback
from airflow_provider_cdata.exceptions import CDataAPIError
from airflow_provider_cdata.transport.routes import Answer, Call, CallState

SNIPPET_LENGTH = 200
SCRUBBED = "***"
# A JWT, or what is left of one: base64url of '{"' (every JWT header starts so), then its segments.
_JWT_RUN = re.compile(r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*){0,2}")
# A run of base64url long enough to be a recognisable piece of a token (one segment, or a cut one).
_TOKEN_PIECE = re.compile(r"[A-Za-z0-9_-]{16,}")


def scrub(text: str, secrets: Sequence[str]) -> str:
    """``text`` without any token: each of ``secrets`` (the bearer tokens the call sent), whole or any
    piece of 16+ characters of one (a segment, a cut token), and any JWT-shaped ``eyJ...`` run at all
    (a token that was cut, re-encoded, or not ours, such as a connect URL's)."""
    known = sorted({secret for secret in secrets if secret}, key=len, reverse=True)
    for secret in known:
        text = text.replace(secret, SCRUBBED)
    if known:

        def piece(match: re.Match[str]) -> str:
            run = match.group()
            return SCRUBBED if any(run in secret for secret in known) else run

        text = _TOKEN_PIECE.sub(piece, text)
    return _JWT_RUN.sub(SCRUBBED, text)


def snippet(text: str, secrets: Sequence[str]) -> str:
    """A short, readable, token-free snippet of ``text``: scrubbed, markup stripped, cut.

    The one way a body or a failure's text reaches a message. Whole tokens go first, from all of it;
    then markup and runs of whitespace; then what could be kept (and a margin longer than any token, so
    no piece of one is cut in two) is scrubbed of pieces and JWT-shaped runs (:func:`scrub`), and cut.
    """
    known = [secret for secret in secrets if secret]
    for secret in known:
        text = text.replace(secret, SCRUBBED)
    text = re.sub(r"(?is)<(head|script|style)\b.*?</\1>", " ", text)
    text = re.sub(r"<[^>]*>", " ", text)
    text = " ".join(text.split())
    text = scrub(text[: 2 * SNIPPET_LENGTH + max(map(len, known), default=0)], known)
    return text if len(text) <= SNIPPET_LENGTH else f"{text[: SNIPPET_LENGTH - 3]}..."


def json_or_none(content: bytes) -> Any:
    try:
        return json.loads(content)
    except (ValueError, RecursionError):  # RecursionError: JSON nested deeper than Python's stack
        return None


def error_message(answer: Answer, secrets: Sequence[str]) -> str:
    """CData's message from a JSON error body, or a short snippet of any other body (never a token:
    both go through :func:`snippet`, the JSON message once decoded, so an escaped token is seen)."""
    text = answer.content.decode("utf-8", errors="replace")
    body = json_or_none(answer.content) if text else None
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
                return snippet(candidate, secrets)
        return snippet(json.dumps(body), secrets)
    if text.strip():
        return snippet(text, secrets)
    try:
        return http.HTTPStatus(answer.status).phrase
    except ValueError:
        return ""


def retry_after_seconds(value: str | None) -> float | None:
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


def settle(call: Call, answer: Answer, state: CallState) -> Answer:
    """The answer of one attempt, carrying the call's tokens (for the snippets of its decoding); or its
    :class:`CDataAPIError`.

    On a route where a 404 can mean the work is done (delete: nothing is left to delete), a 404 is the
    answer, not an error, when an earlier attempt may have been carried out (``state.maybe_done``): the
    first delete went through and its answer was lost, so the retry finds nothing. A 404 on the first
    attempt (or after attempts that were certainly not carried out: a connect failure, a 429, a 401) is
    an error: CData does not know the id, and nothing was deleted.
    """
    if 200 <= answer.status < 300 or (answer.status == 404 and call.route.gone_is_done and state.maybe_done):
        return Answer(answer.status, answer.headers, answer.content, answer.attempts, tuple(state.tokens))
    if answer.status >= 500:
        state.maybe_done = True
    message = error_message(answer, state.tokens)
    retry_after = retry_after_seconds(answer.headers.get("retry-after"))
    if not call.route.repeatable and state.maybe_done:
        message = f"{message}; {NOT_REPEATED}"
        retryable: bool | None = False
    else:
        retryable = None  # by status
    raise CDataAPIError(
        call.method, call.path, answer.status, message, answer.attempts, retry_after, retryable
    )


NOT_REPEATED = "not retried: the attempt may have been carried out, and another would do it twice"


def network_error(call: Call, exc: BaseException, state: CallState) -> CDataAPIError:
    """A failure of the sync transport (requests) with no HTTP answer: refused, reset, timed out, cut
    short, or a TLS failure. The async transport classifies aiohttp's failures itself (``aio``)."""
    tls = is_tls_failure(exc)
    if tls:
        kind = "TLS failure"
    elif isinstance(exc, requests.Timeout):
        kind = "timed out"
    elif isinstance(exc, requests.exceptions.ChunkedEncodingError):
        kind = "connection closed or answer cut short"
    else:
        kind = "connection error"
    return no_answer(
        call, kind, str(exc) or type(exc).__name__, state, sent=not is_connect_failure(exc), tls=tls
    )


def no_answer(call: Call, kind: str, detail: str, state: CallState, sent: bool, tls: bool) -> CDataAPIError:
    """The one error of an attempt that got no HTTP answer, whichever transport made it: ``kind`` says
    what happened, ``detail`` is the HTTP library's text (scrubbed of every token here), ``sent`` whether
    the request may have left (then the server may have carried it out), ``tls`` a certificate or
    handshake failure (not retried)."""
    if sent and not tls:
        state.maybe_done = True  # sent, and the answer lost: the server may have carried it out
    text = snippet(detail, state.tokens) or kind
    # A certificate that does not verify will not verify on the next try either.
    retryable = not tls
    if not call.route.repeatable and state.maybe_done:
        retryable, text = False, f"{text}; {NOT_REPEATED}"
    return CDataAPIError(call.method, call.path, None, f"{kind}: {text}", state.requests, retryable=retryable)


def is_connect_failure(exc: BaseException | None) -> bool:
    """The request never left: no connection could be made (refused, no route, connect timeout)."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, requests.exceptions.ConnectTimeout | urllib3.exceptions.NewConnectionError):
            return True
        reason = getattr(exc, "reason", None)  # urllib3's MaxRetryError, inside requests' errors
        if isinstance(reason, BaseException) and is_connect_failure(reason):
            return True
        nested = exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else None
        exc = exc.__cause__ or exc.__context__ or nested
        seen += 1
    return False


def is_tls_failure(exc: BaseException | None) -> bool:
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, ssl.SSLError | requests.exceptions.SSLError):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def json_body(call: Call, answer: Answer, promise: str) -> Any:
    body = json_or_none(answer.content)
    if body is None:
        text = snippet(answer.content.decode("utf-8", errors="replace"), answer.tokens)
        raise CDataAPIError(
            call.method,
            call.path,
            answer.status,
            f"answered {answer.status} but the body is not the JSON with {promise} the route promises: "
            f"{text or 'empty body'}",
            answer.attempts,
        )
    return body


def decode_connect_url(call: Call, answer: Answer, api_url: str) -> str:
    """The connect URL of a Create or Edit answer: an absolute ``https://`` URL with a host (``http://``
    only on loopback, or on the API's own host when the API root itself is plain http). Anything else
    (``javascript:``, ``data:``, a relative URL, ``user@host``, control characters) is an error that
    says what is wrong without repeating the URL (it may carry a token)."""
    body = json_body(call, answer, "a redirectURL")
    url = body.get("redirectURL") if isinstance(body, dict) else None
    if not isinstance(url, str) or not url:
        raise CDataAPIError(
            call.method,
            call.path,
            answer.status,
            f"answered {answer.status} without a redirectURL string in its JSON body",
            answer.attempts,
        )
    if problem := connect_url_problem(url, api_url):
        raise CDataAPIError(
            call.method,
            call.path,
            answer.status,
            # The problem names at most the scheme; snippet() makes sure no piece of a token is in it.
            f"answered {answer.status} with a redirectURL that is not a connect URL: "
            f"it {snippet(problem, answer.tokens)}",
            answer.attempts,
        )
    return url


def connect_url_problem(url: str, api_url: str) -> str | None:
    """Why ``url`` is not a connect URL to hand a customer (see :func:`decode_connect_url`), or None."""
    if any(char.isspace() or not char.isprintable() for char in url) or "\\" in url:
        return "contains spaces, control characters or a backslash"
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018  # raises ValueError for a port that is not a number in range
    except ValueError:
        return "is not a valid URL"
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        shown = f"'{scheme[:20]}:'" if scheme else "none: a relative URL"
        return f"is not an absolute https:// URL (its scheme: {shown})"
    if not host:
        return "has no host"
    if "@" in parts.netloc:
        return "carries credentials before its host (user@host)"
    if scheme == "http":
        api = urlsplit(api_url)
        if not (is_loopback(host) or (api.scheme == "http" and api.hostname == host)):
            return "is plain http:// to a host that is not loopback"
    return None


def decode_connections(call: Call, answer: Answer) -> list[dict[str, Any]]:
    body = json_body(call, answer, "a connections list")
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
