"""What came back, turned into a value or a :class:`~airflow_provider_cdata.exceptions.CDataAPIError`.

Error messages keep CData's own message (or a short snippet of any other body) and never a token:
every token a call sent is scrubbed from the body before it is cut.
"""

from __future__ import annotations

import email.utils
import http
import json
import re
import ssl
import time
from typing import Any

import httpx
import requests

from airflow_provider_cdata.exceptions import CDataAPIError
from airflow_provider_cdata.transport.routes import Answer, Call, CallState

SNIPPET_LENGTH = 200


def scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def snippet(text: str) -> str:
    text = re.sub(r"(?is)<(head|script|style)\b.*?</\1>", " ", text)
    text = re.sub(r"<[^>]*>", " ", text)
    text = " ".join(text.split())
    return text if len(text) <= SNIPPET_LENGTH else f"{text[: SNIPPET_LENGTH - 3]}..."


def json_or_none(content: bytes) -> Any:
    try:
        return json.loads(content)
    except (ValueError, RecursionError):  # RecursionError: JSON nested deeper than Python's stack
        return None


def error_message(answer: Answer, secrets: list[str]) -> str:
    """CData's message from a JSON error body, or a short snippet of any other body.

    Tokens are scrubbed from the whole body first, so a cut snippet cannot keep part of one.
    """
    text = scrub(answer.content.decode("utf-8", errors="replace"), secrets)
    body = json_or_none(text.encode()) if text else None
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
                return snippet(candidate)
        return snippet(json.dumps(body))
    if text.strip():
        return snippet(text)
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


def raise_for_status(call: Call, answer: Answer, state: CallState) -> None:
    if 200 <= answer.status < 300:
        return
    message = error_message(answer, state.tokens)
    retry_after = retry_after_seconds(answer.headers.get("retry-after"))
    raise CDataAPIError(call.method, call.path, answer.status, message, answer.attempts, retry_after)


def network_error(call: Call, exc: BaseException, state: CallState) -> CDataAPIError:
    """A failure with no HTTP answer: refused, reset, timed out, cut short, or a TLS failure."""
    tls = is_tls_failure(exc)
    if tls:
        kind = "TLS failure"
    elif isinstance(exc, requests.Timeout | httpx.TimeoutException):
        kind = "timed out"
    elif isinstance(exc, requests.exceptions.ChunkedEncodingError | httpx.RemoteProtocolError):
        kind = "connection closed or answer cut short"
    else:
        kind = "connection error"
    detail = snippet(scrub(str(exc), state.tokens)) or type(exc).__name__
    # A certificate that does not verify will not verify on the next try either.
    return CDataAPIError(call.method, call.path, None, f"{kind}: {detail}", state.requests, retryable=not tls)


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
        raise CDataAPIError(
            call.method,
            call.path,
            answer.status,
            f"answered {answer.status} but the body is not the JSON with {promise} the route promises: "
            f"{snippet(answer.content.decode('utf-8', errors='replace')) or 'empty body'}",
            answer.attempts,
        )
    return body


def decode_connect_url(call: Call, answer: Answer) -> str:
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
    return url


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
