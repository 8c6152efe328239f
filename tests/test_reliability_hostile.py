"""Hostile answers: what a broken proxy, a misrouted host or a bad day at CData can send back.

Each case is a purpose-built loopback server (raw sockets: nothing is normalised for us) answering
every request the same way. Every call, sync and async, must end in a CDataAPIError that says what
happened (status, route, a short readable message, never the token), within its timeouts, and be
retried only when retrying can help. tests/test_hook_calls.py already covers a 200 that is HTML or
lacks the promised fields, and how error messages are read from JSON and text bodies; these are the
answers it does not cover.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from airflow_provider_cdata.emulator import KeyPair
from airflow_provider_cdata.exceptions import CDataAPIError
from airflow_provider_cdata.hooks import CDataHook, RetryPolicy
from tests.loopback import LoopbackServer, Serving
from tests.test_hook_calls import Runner, runner_fixture

run = runner_fixture()

TIMEOUT = 0.5
MAX_RETRIES = 1
TEN_MB = 10 * 1024 * 1024
NGINX_503 = (
    b"<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n"
    b"<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
NESTED_JSON = b"[" * 100_000 + b"]" * 100_000

Answer = Callable[[socket.socket, bytes], None]


def http(status: int, body: bytes = b"", content_type: str = "application/json", **headers: str) -> bytes:
    """A complete HTTP/1.1 response that closes the connection."""
    lines = [f"HTTP/1.1 {status} X", f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def send(response: bytes) -> Answer:
    def answer(conn: socket.socket, _: bytes) -> None:
        conn.sendall(response)

    return answer


@dataclass
class RawServer(LoopbackServer):
    """A loopback TCP server: reads each request (head and body), records it, lets ``answer`` reply."""

    answer: Answer
    requests: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.listen()

    def serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            request = b""
            try:
                while b"\r\n\r\n" not in request:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    request += chunk
                head, _, body = request.partition(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.lower().split(b"\r\n")
                        if line.startswith(b"content-length:")
                    ),
                    0,
                )
                while len(body) < length:
                    body += conn.recv(65536)
                self.requests.append(request)
                self.answer(conn, head)
            except OSError:
                return


@pytest.fixture
def hostile(
    keys: KeyPair, monkeypatch: pytest.MonkeyPatch, fast_retries: RetryPolicy
) -> Iterator[Callable[[Answer], RawServer]]:
    """Start a RawServer with the given answer and point ``cdata_default`` at it."""
    with Serving(monkeypatch, keys, timeout=TIMEOUT, max_retries=MAX_RETRIES) as serving:
        yield lambda answer: serving(RawServer(answer))


@dataclass(frozen=True)
class Hostile:
    answer: Answer
    status: int | None  # the status the error carries (None: no usable HTTP answer)
    fragment: str  # in the error's message
    retried: bool  # retrying can help: a 5xx or no answer
    call: tuple[str, tuple[Any, ...]] = ("list_connections", ())


CASES: dict[str, Hostile] = {
    "html error page": Hostile(
        send(http(503, NGINX_503, "text/html")), 503, "503 Service Temporarily Unavailable nginx", True
    ),
    "empty 200": Hostile(send(http(200)), 200, "empty body", False),
    "empty 500": Hostile(send(http(500, content_type="text/plain")), 500, "Internal Server Error", True),
    "truncated JSON, well framed": Hostile(
        send(http(200, b'{"connections": [{"id": "0b5f7d5c", "na')), 200, "not the JSON", False
    ),
    "HTML labelled as JSON": Hostile(send(http(200, NGINX_503)), 200, "not the JSON", False),
    "JSON null": Hostile(send(http(200, b"null")), 200, "not the JSON with a connections list", False),
    "10 MB body": Hostile(send(http(200, b"x" * TEN_MB, "text/plain")), 200, "x" * 100, False),
    "10 MB error page": Hostile(
        send(http(502, b"<p>" + b"bad gateway " * (TEN_MB // 12))), 502, "bad gateway", True
    ),
    "deeply nested JSON": Hostile(send(http(200, NESTED_JSON)), 200, "not the JSON", False),
    "deeply nested JSON error": Hostile(send(http(500, NESTED_JSON)), 500, "[[[", True),
    "invalid UTF-8": Hostile(
        send(http(500, b"broken \xff\xfe\xc3\x28 body", "text/plain")), 500, "broken", True
    ),
    "not HTTP at all": Hostile(send(b"SSH-2.0-OpenSSH_9.6\r\n"), None, "connection", True),
    "a redirect for a POST": Hostile(
        send(http(308, Location="http://127.0.0.1:9/api/poweredby/connection/create")),
        308,
        "Permanent Redirect",
        False,
        ("create_connection", ("Salesforce", "https://app.example.com/done")),
    ),
}


@pytest.mark.parametrize("name", CASES)
def test_a_hostile_answer_is_a_clear_api_error(
    hostile: Callable[[Answer], RawServer], run: Runner, name: str
) -> None:
    case = CASES[name]
    server = hostile(case.answer)
    method, args = case.call
    started = time.monotonic()
    with pytest.raises(CDataAPIError) as caught:
        run(CDataHook(), method, *args)
    error = caught.value
    assert time.monotonic() - started < 10
    assert error.status_code == case.status
    assert case.fragment in error.message
    assert len(str(error)) < 400, "a short message, not the body"
    assert "<" not in error.message, "markup is stripped"
    assert "eyJ" not in str(error), "never the token"
    assert len(server.requests) == (MAX_RETRIES + 1 if case.retried else 1)


def test_json_under_an_html_content_type_is_read(hostile: Callable[[Answer], RawServer], run: Runner) -> None:
    """CData documents no content type: a JSON body is taken for what it is."""
    hostile(send(http(200, b'{"connections": [{"id": "a", "name": "Sales"}]}', "text/html")))
    assert run(CDataHook(), "list_connections") == [{"id": "a", "name": "Sales"}]


def test_a_10_mb_list_is_read_in_full(hostile: Callable[[Answer], RawServer], run: Runner) -> None:
    connection = {"id": "0b5f7d5c-3e1a-4c55-9a66-2f3b1e7c9d10", "name": "x" * 200, "dataSource": "Salesforce"}
    count = TEN_MB // len(json.dumps(connection))
    hostile(send(http(200, json.dumps({"connections": [connection] * count}).encode())))
    listed = run(CDataHook(), "list_connections")
    assert len(listed) == count
    assert listed[-1] == connection


def test_a_server_that_never_answers_times_out_on_every_attempt(
    hostile: Callable[[Answer], RawServer], run: Runner
) -> None:
    def never_answer(conn: socket.socket, _: bytes) -> None:
        server.stopping.wait(30)

    server = hostile(never_answer)
    started = time.monotonic()
    with pytest.raises(CDataAPIError) as caught:
        run(CDataHook(), "list_connections")
    elapsed = time.monotonic() - started
    assert caught.value.status_code is None
    assert "timed out" in caught.value.message
    assert caught.value.attempts == len(server.requests) == MAX_RETRIES + 1
    assert (MAX_RETRIES + 1) * TIMEOUT <= elapsed < (MAX_RETRIES + 1) * TIMEOUT + 2, elapsed


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_to_another_host_is_not_followed_and_the_token_stays_home(
    hostile: Callable[[Answer], RawServer], run: Runner, status: int
) -> None:
    elsewhere = RawServer(send(http(200, b'{"connections": []}')))
    try:
        target = f"{elsewhere.url}/poweredby/connection/list"
        origin = hostile(send(http(status, content_type="text/plain", Location=target)))
        with pytest.raises(CDataAPIError) as caught:
            run(CDataHook(), "list_connections")
        assert caught.value.status_code == status
        assert len(origin.requests) == 1, "a redirect is an answer, not retried"
        assert b"authorization: bearer ey" in origin.requests[0].lower(), "the origin got the token"
        assert elsewhere.requests == [], "nothing, and no Authorization header, reached the other host"
    finally:
        elsewhere.stop()


def _bearer(request: bytes) -> str:
    """The bearer token a recorded request carried."""
    header = next(line for line in request.split(b"\r\n") if line.lower().startswith(b"authorization:"))
    return header.split(b"Bearer ", 1)[1].decode()


def test_aiohttps_own_error_holds_the_token_and_the_hooks_error_does_not(
    hostile: Callable[[Answer], RawServer], caplog: pytest.LogCaptureFixture
) -> None:
    """A status line aiohttp cannot parse: aiohttp's own ClientResponseError carries the request's
    headers (its repr shows the Authorization header); the hook's error, its chain and its log lines
    must hold no token."""
    import asyncio

    import aiohttp

    server = hostile(send(b"HTTP/1.1 abc Not a status\r\n\r\n"))
    caplog.set_level(logging.DEBUG)

    async def both() -> tuple[BaseException, CDataAPIError]:
        hook = CDataHook()
        try:
            await hook.alist_connections()
        except CDataAPIError as error:
            ours = error
        finally:
            await hook.aclose()
        assert len(server.requests) == MAX_RETRIES + 1, "no answer: retried"
        token = _bearer(server.requests[0])
        async with aiohttp.ClientSession() as session:
            try:
                await session.get(server.url, headers={"Authorization": f"Bearer {token}"})
            except aiohttp.ClientResponseError as error:
                return error, ours
        raise AssertionError("aiohttp parsed a status line of 'abc'")

    theirs, ours = asyncio.run(both())
    tokens = {_bearer(request) for request in server.requests}
    assert any(token in repr(theirs) for token in tokens), "the hazard is real: aiohttp's repr has it"
    assert ours.status_code is None
    assert "answer cut short" in ours.message
    assert ours.__cause__ is None
    assert ours.__context__ is None, "nothing chained leads back to aiohttp's exception"
    texts = [str(ours), repr(ours), repr(ours.args), *(record.getMessage() for record in caplog.records)]
    for token in tokens:
        assert not any(token in text for text in texts)
        assert not any(token.split(".")[2] in text for text in texts), "nor its signature"
