"""CDataHook against the emulator over real HTTP: every call, tokens, keep-alive, retries and errors.

Most tests run twice, through the sync methods (requests) and the async ones (aiohttp), with the
``run`` fixture: ``run(hook, "list_connections", ...)`` calls ``hook.list_connections(...)`` or awaits
``hook.alist_connections(...)`` on one event loop kept for the whole test.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from airflow_provider_cdata import __version__
from airflow_provider_cdata.emulator import complete_flow
from airflow_provider_cdata.exceptions import CDataAPIError
from airflow_provider_cdata.hooks import ROUTES, CDataHook, RetryPolicy
from tests.conftest import CData, cdata_connection

REDIRECT = "https://app.example.com/done"
UNKNOWN_ID = "123e4567-e89b-12d3-a456-426614174000"

pytestmark = pytest.mark.usefixtures("fast_retries")


class Runner:
    """Calls a hook method the sync way, or the async way on one event loop kept for the test."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.loop = asyncio.new_event_loop() if mode == "async" else None
        self.hooks: list[CDataHook] = []

    def __call__(self, hook: CDataHook, method: str, *args: Any, **kwargs: Any) -> Any:
        if self.loop is None:
            return getattr(hook, method)(*args, **kwargs)
        if hook not in self.hooks:
            self.hooks.append(hook)
        return self.loop.run_until_complete(getattr(hook, f"a{method}")(*args, **kwargs))

    def close(self) -> None:
        if self.loop is not None:
            for hook in self.hooks:
                self.loop.run_until_complete(hook.aclose())
            self.loop.close()


def runner_fixture() -> Any:
    """The ``run`` fixture: each test using it runs once sync and once async. Other modules reuse it
    with ``run = runner_fixture()``."""

    @pytest.fixture(params=["sync", "async"])
    def run(request: pytest.FixtureRequest) -> Iterator[Runner]:
        runner = Runner(request.param)
        yield runner
        runner.close()

    return run


run = runner_fixture()


def use_connection(
    monkeypatch: pytest.MonkeyPatch, cdata: CData, conn_id: str = "cdata_default", **extra: Any
) -> None:
    """Point the Airflow connection ``conn_id`` (an env var) at the emulator, with extra ``extra``."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(cdata_connection(cdata, **extra)))


def hook_with(monkeypatch: pytest.MonkeyPatch, cdata: CData, **extra: Any) -> CDataHook:
    use_connection(monkeypatch, cdata, **extra)
    return CDataHook()


def statuses(cdata: CData, route: str) -> list[int]:
    return [record.status for record in cdata.emulator.requests(route)]


# -- each call, as the emulator saw it ------------------------------------------------------------------
def test_create_connection_posts_the_body_and_returns_the_connect_url(
    cdata_hook_env: CDataHook, cdata: CData, run: Runner
) -> None:
    url = run(cdata_hook_env, "create_connection", "Salesforce", REDIRECT, name="Sales", external_id="crm-1")
    (record,) = cdata.emulator.requests("create")
    assert (record.method, record.path, record.status) == ("POST", "/api/poweredby/connection/create", 200)
    assert record.body == {
        "dataSource": "Salesforce",
        "redirectURL": REDIRECT,
        "name": "Sales",
        "externalId": "crm-1",
    }
    assert record.claims is not None
    assert record.claims["iss"] == cdata.parent_id
    assert record.claims["sub"] == cdata.account_id
    assert record.claims["tokenType"] == "powered-by"
    assert record.claims["exp"] - record.claims["iat"] == 300
    parts = urlsplit(url)
    assert url.startswith(f"{cdata.emulator.root_url}/oem/user/connections/edit?")
    assert parse_qs(parts.query)["driver"] == ["Salesforce"]
    # The URL really is the customer's way in: completing the page creates the connection.
    back = complete_flow(url)
    assert back["cdata_connection_status"] == "success"
    (created,) = cdata.emulator.connections(cdata.account_id)
    assert (created["name"], created["externalId"]) == ("Sales", "crm-1")


def test_create_connection_leaves_out_optional_fields(
    cdata_hook_env: CDataHook, cdata: CData, run: Runner
) -> None:
    run(cdata_hook_env, "create_connection", "Salesforce", REDIRECT)
    (record,) = cdata.emulator.requests("create")
    assert record.body == {"dataSource": "Salesforce", "redirectURL": REDIRECT}


def test_edit_connection_posts_to_the_connections_route(
    cdata_hook_env: CDataHook, cdata: CData, run: Runner
) -> None:
    connection = cdata.emulator.add_connection(cdata.account_id, "Snowflake", name="Warehouse")
    url = run(cdata_hook_env, "edit_connection", connection["id"].upper(), REDIRECT)
    (record,) = cdata.emulator.requests("edit")
    assert (record.method, record.path) == ("POST", f"/api/poweredby/connection/edit/{connection['id']}")
    assert record.body == {"redirectURL": REDIRECT}
    assert record.claims is not None
    assert record.claims["sub"] == cdata.account_id
    assert urlsplit(url).path == f"/oem/user/connections/edit/{connection['id']}"
    assert parse_qs(urlsplit(url).query)["driver"] == ["Snowflake"]


def test_list_connections_returns_what_the_api_lists(
    cdata_hook_env: CDataHook, cdata: CData, run: Runner
) -> None:
    first = cdata.emulator.add_connection(cdata.account_id, "Salesforce", name="Sales", external_id="crm-1")
    cdata.emulator.add_connection(cdata.account_id, "Snowflake", name="Warehouse")
    listed = run(cdata_hook_env, "list_connections")
    assert [c["name"] for c in listed] == ["Sales", "Warehouse"]
    assert listed[0] == {
        "id": first["id"],
        "name": "Sales",
        "dataSource": "Salesforce",
        "lastModified": first["lastModified"],
        "externalId": "crm-1",
        "mcpUrl": f"/mcp/connections/{first['id']}",
        "status": "Authenticated",
    }
    assert listed[1]["externalId"] is None, "kept as CData sends it: null"
    (record,) = cdata.emulator.requests("list")
    assert (record.method, record.path, record.query) == ("GET", "/api/poweredby/connection/list", {})


def test_list_connections_filters_go_to_the_query(
    cdata_hook_env: CDataHook, cdata: CData, run: Runner
) -> None:
    cdata.emulator.add_connection(cdata.account_id, "Salesforce", name="Sales", external_id="crm-1")
    cdata.emulator.add_connection(cdata.account_id, "Salesforce", name="Other", external_id="crm-2")
    cdata.emulator.add_connection(cdata.account_id, "Snowflake", name="Warehouse", external_id="crm-1x")
    listed = run(cdata_hook_env, "list_connections", data_source="salesforce", external_id="crm-1")
    assert [c["name"] for c in listed] == ["Sales"]
    assert cdata.emulator.requests("list")[-1].query == {"driver": "salesforce", "externalId": "crm-1"}


def test_delete_connection_deletes(cdata_hook_env: CDataHook, cdata: CData, run: Runner) -> None:
    connection = cdata.emulator.add_connection(cdata.account_id)
    assert run(cdata_hook_env, "delete_connection", connection["id"]) is None
    (record,) = cdata.emulator.requests("delete")
    assert (record.method, record.path, record.status) == (
        "DELETE",
        f"/api/poweredby/connection/delete/{connection['id']}",
        200,
    )
    assert cdata.emulator.connections(cdata.account_id) == []


def test_clear_metadata_uses_the_seeds_route(cdata_hook_env: CDataHook, cdata: CData, run: Runner) -> None:
    connection = cdata.emulator.add_connection(cdata.account_id)
    assert run(cdata_hook_env, "clear_metadata", connection["id"]) is None
    (record,) = cdata.emulator.requests("clear_metadata")
    assert (record.method, record.path) == (
        "DELETE",
        f"/api/poweredby/connection/{connection['id']}/metadata",
    )
    assert cdata.emulator.connection(connection["id"])["metadataClears"] == 1  # type: ignore[index]


def test_route_table_holds_every_route() -> None:
    assert {name: (r.method, r.path) for name, r in ROUTES.items()} == {
        "create": ("POST", "/poweredby/connection/create"),
        "edit": ("POST", "/poweredby/connection/edit/{connection_id}"),
        "list": ("GET", "/poweredby/connection/list"),
        "delete": ("DELETE", "/poweredby/connection/delete/{connection_id}"),
        "clear_metadata": ("DELETE", "/poweredby/connection/{connection_id}/metadata"),
        "account_create": ("POST", "/poweredby/account/create"),
        "account_list": ("GET", "/poweredby/account/list"),
        "account_get": ("GET", "/poweredby/account/{id_or_external_id}"),
        "account_update": ("PUT", "/poweredby/account/update/{account_id}"),
        "account_delete": ("DELETE", "/poweredby/account/delete/{account_id}"),
        "sources": ("GET", "/poweredby/sources/list"),
    }
    # Account calls and List Data Sources are the parent's: their tokens carry no sub.
    assert {name for name, r in ROUTES.items() if r.parent_level} == {
        "account_create",
        "account_list",
        "account_get",
        "account_update",
        "account_delete",
        "sources",
    }


# -- which child account -------------------------------------------------------------------------------
def test_account_comes_from_the_call_then_the_hook_then_the_connection(
    cdata: CData, monkeypatch: pytest.MonkeyPatch, run: Runner
) -> None:
    second = cdata.emulator.add_account(cdata.parent_id, external_id="customer-2")["id"]
    third = cdata.emulator.add_account(cdata.parent_id, external_id="customer-3")["id"]
    use_connection(monkeypatch, cdata)
    run(CDataHook(), "list_connections")
    run(CDataHook(account_id=second), "list_connections")
    run(CDataHook(account_id=second), "list_connections", account_id=third.upper())
    subjects = [r.claims["sub"] for r in cdata.emulator.requests("list") if r.claims]
    assert subjects == [cdata.account_id, second, third]


def test_an_account_of_another_parent_is_refused_once_with_403(
    cdata_hook_env: CDataHook, cdata: CData, run: Runner
) -> None:
    with pytest.raises(CDataAPIError) as caught:
        run(cdata_hook_env, "list_connections", account_id=UNKNOWN_ID)
    assert caught.value.status_code == 403
    assert "not a child account" in caught.value.message
    assert statuses(cdata, "list") == [403]


# -- tokens ----------------------------------------------------------------------------------------------
def test_1000_calls_mint_exactly_one_token(cdata_hook_env: CDataHook, cdata: CData, run: Runner) -> None:
    for _ in range(1000):
        run(cdata_hook_env, "list_connections")
    assert cdata_hook_env.tokens_minted == 1
    issued = {(r.claims["iat"], r.claims["exp"]) for r in cdata.emulator.requests("list") if r.claims}
    assert len(issued) == 1
    assert cdata.emulator.counters.count("list", 200) == 1000


def test_a_token_close_to_expiry_is_reminted(cdata_hook_env: CDataHook, cdata: CData, run: Runner) -> None:
    run(cdata_hook_env, "list_connections")
    issued = cdata.emulator.requests("list")[0].claims["iat"]  # type: ignore[index]
    cdata_hook_env.clock = lambda: issued + 239  # still more than 60 s left: reused
    run(cdata_hook_env, "list_connections")
    assert cdata_hook_env.tokens_minted == 1
    cdata_hook_env.clock = lambda: issued + 241  # within 60 s of its expiry: a new one
    cdata.emulator.clock.advance(issued + 241 - time.time())  # the server's clock moves along too
    run(cdata_hook_env, "list_connections")
    assert cdata_hook_env.tokens_minted == 2
    first, second, third = (r.claims for r in cdata.emulator.requests("list"))
    assert first == second
    assert third is not None
    assert third["iat"] == issued + 241
    assert statuses(cdata, "list") == [200, 200, 200], "renewed before the server could refuse it"


def test_a_401_remints_once_and_retries_once(cdata_hook_env: CDataHook, cdata: CData, run: Runner) -> None:
    run(cdata_hook_env, "list_connections")
    issued = cdata.emulator.requests("list")[0].claims["iat"]  # type: ignore[index]
    # Our clock says the token has 100 s left; the server's is 301 s on: it has expired there.
    cdata_hook_env.clock = lambda: issued + 200
    cdata.emulator.clock.advance(issued + 301 - time.time())
    assert run(cdata_hook_env, "list_connections") == []
    assert statuses(cdata, "list") == [200, 401, 200]
    assert cdata_hook_env.tokens_minted == 2
    assert cdata.emulator.requests("list")[2].claims["iat"] == issued + 200  # type: ignore[index]


def test_a_second_401_fails_after_exactly_one_remint(
    cdata_hook_env: CDataHook, cdata: CData, run: Runner
) -> None:
    run(cdata_hook_env, "list_connections")
    cdata.emulator.clock.advance(10_000)  # no token we mint can be valid there
    with pytest.raises(CDataAPIError) as caught:
        run(cdata_hook_env, "list_connections")
    assert caught.value.status_code == 401
    assert caught.value.attempts == 2
    assert caught.value.message == "JWT has expired"
    assert statuses(cdata, "list") == [200, 401, 401]
    assert cdata_hook_env.tokens_minted == 2


def test_a_re_registered_parent_key_fails_after_one_remint(
    cdata_hook_env: CDataHook, cdata: CData, run: Runner, other_keys: Any
) -> None:
    run(cdata_hook_env, "list_connections")
    cdata.emulator.register_parent(other_keys.public_pem, cdata.parent_id)  # the key was rotated at CData
    with pytest.raises(CDataAPIError, match="HTTP 401") as caught:
        run(cdata_hook_env, "create_connection", "Salesforce", REDIRECT)
    assert "signature" in caught.value.message
    assert statuses(cdata, "create") == [401, 401]
    assert cdata_hook_env.tokens_minted == 2


# -- one connection, kept alive --------------------------------------------------------------------------
def test_100_sequential_calls_open_one_tcp_connection(
    cdata_hook_env: CDataHook, cdata: CData, run: Runner
) -> None:
    connection = cdata.emulator.add_connection(cdata.account_id)
    for index in range(100):
        if index % 2:
            run(cdata_hook_env, "list_connections")
        else:
            run(cdata_hook_env, "clear_metadata", connection["id"])
    assert cdata.emulator.counters.count() == 100
    assert cdata.emulator.counters.connections_accepted == 1


# -- faults and retries ------------------------------------------------------------------------------------
FAULTS: list[tuple[str, dict[str, Any]]] = [
    ("status", {"status": 429}),
    ("status", {"status": 500}),
    ("status", {"status": 502}),
    ("status", {"status": 503}),
    ("status", {"status": 504}),
    ("html", {}),
    ("drop", {}),
    ("truncated", {}),
]


@pytest.mark.parametrize(("kind", "options"), FAULTS, ids=[f"{k}-{o.get('status', '')}" for k, o in FAULTS])
def test_each_fault_kind_is_retried_until_the_call_succeeds(
    cdata: CData, monkeypatch: pytest.MonkeyPatch, run: Runner, kind: str, options: dict[str, Any]
) -> None:
    hook = hook_with(monkeypatch, cdata, max_retries=3)
    cdata.emulator.add_connection(cdata.account_id, name="Sales")
    cdata.emulator.inject(kind, route="list", times=3, **options)
    listed = run(hook, "list_connections")
    assert [c["name"] for c in listed] == ["Sales"]
    assert cdata.emulator.counters.count("list") == 4
    assert cdata.emulator.counters.faults[kind] == 3


def test_latency_beyond_the_timeout_is_retried(
    cdata: CData, monkeypatch: pytest.MonkeyPatch, run: Runner, caplog: pytest.LogCaptureFixture
) -> None:
    hook = hook_with(monkeypatch, cdata, timeout="0.3", max_retries="2")
    cdata.emulator.inject("latency", route="list", times=2, seconds=1.0)
    started = time.monotonic()
    with caplog.at_level("WARNING", logger="airflow_provider_cdata.hooks"):
        assert run(hook, "list_connections") == []
    assert time.monotonic() - started >= 0.6, "two reads timed out before the third answered"
    retries = [r.getMessage() for r in caplog.records if "timed out" in r.getMessage()]
    assert len(retries) == 2
    assert "retry 2 of 2" in retries[1]
    assert cdata.emulator.counters.count("list", 200) >= 1


@pytest.mark.parametrize("method", ["create", "edit", "delete", "clear_metadata"])
@pytest.mark.parametrize("kind", ["drop", "truncated", "status"])
def test_every_call_is_retried_the_same_way(
    cdata_hook_env: CDataHook, cdata: CData, run: Runner, method: str, kind: str
) -> None:
    connection = cdata.emulator.add_connection(cdata.account_id)
    calls = {
        "create": ("create_connection", ("Salesforce", REDIRECT)),
        "edit": ("edit_connection", (connection["id"], REDIRECT)),
        "delete": ("delete_connection", (connection["id"],)),
        "clear_metadata": ("clear_metadata", (connection["id"],)),
    }
    name, args = calls[method]
    cdata.emulator.inject(kind, route=method, times=2)
    run(cdata_hook_env, name, *args)
    assert cdata.emulator.counters.count(method) == 3
    assert cdata.emulator.counters.count(method, 200) >= 1


def test_retry_after_in_seconds_is_honoured(cdata: CData, monkeypatch: pytest.MonkeyPatch) -> None:
    hook = hook_with(monkeypatch, cdata)
    cdata.emulator.inject("status", route="list", status=429, retry_after=2, times=1)
    started = time.monotonic()
    assert hook.list_connections() == []
    assert time.monotonic() - started >= 2.0
    assert statuses(cdata, "list") == [429, 200]


def test_retry_after_is_capped_by_the_policy(
    cdata: CData, monkeypatch: pytest.MonkeyPatch, run: Runner, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(CDataHook, "retry_policy", RetryPolicy(retry_after_cap=0.3))
    hook = hook_with(monkeypatch, cdata)
    cdata.emulator.inject("status", route="list", status=503, retry_after=30, times=1)
    started = time.monotonic()
    with caplog.at_level("WARNING", logger="airflow_provider_cdata.hooks"):
        assert run(hook, "list_connections") == []
    assert 0.3 <= time.monotonic() - started < 5
    assert "HTTP 503; retry 1 of 5 in 0.30 s" in caplog.text


def test_retry_after_as_an_http_date_is_honoured(
    cdata: CData, monkeypatch: pytest.MonkeyPatch, run: Runner
) -> None:
    hook = hook_with(monkeypatch, cdata)
    # An HTTP date has whole seconds: 2 s ahead is between 1 and 2 s away when it arrives.
    cdata.emulator.inject("status", route="list", status=429, retry_after=2, retry_after_date=True, times=1)
    started = time.monotonic()
    assert run(hook, "list_connections") == []
    assert time.monotonic() - started >= 0.9


@pytest.mark.parametrize(
    ("call", "status", "fragment"),
    [
        (("create_connection", ("NoSuchSource", REDIRECT)), 400, "Unknown data source 'NoSuchSource'"),
        (("edit_connection", (UNKNOWN_ID, REDIRECT)), 404, f"Connection '{UNKNOWN_ID}' was not found"),
        (("clear_metadata", (UNKNOWN_ID,)), 404, f"Connection '{UNKNOWN_ID}' was not found"),
        (("list_connections", ()), 403, "is not a child account"),
    ],
)
def test_client_errors_are_sent_once_and_keep_cdatas_message(
    cdata: CData,
    monkeypatch: pytest.MonkeyPatch,
    run: Runner,
    call: tuple[str, tuple[Any, ...]],
    status: int,
    fragment: str,
) -> None:
    name, args = call
    hook = hook_with(monkeypatch, cdata, **({"account_id": UNKNOWN_ID} if status == 403 else {}))
    with pytest.raises(CDataAPIError) as caught:
        run(hook, name, *args)
    error = caught.value
    assert (error.status_code, error.attempts) == (status, 1)
    assert fragment in error.message
    assert cdata.emulator.counters.count() == 1, "a 4xx other than 401 and 429 is not retried"
    assert str(error).startswith(f"CData API {error.method} {error.route} failed with HTTP {status}: ")


def test_a_conflict_is_sent_once(cdata_hook_env: CDataHook, cdata: CData, run: Runner) -> None:
    cdata.emulator.add_connection(cdata.account_id, external_id="crm-1")
    with pytest.raises(CDataAPIError) as caught:
        run(cdata_hook_env, "create_connection", "Salesforce", REDIRECT, external_id="crm-1")
    assert caught.value.status_code == 409
    assert statuses(cdata, "create") == [409]


def test_api_error_carries_method_route_status_and_message(cdata_hook_env: CDataHook, run: Runner) -> None:
    with pytest.raises(CDataAPIError) as caught:
        run(cdata_hook_env, "clear_metadata", UNKNOWN_ID)
    error = caught.value
    assert error.method == "DELETE"
    assert error.route == f"/poweredby/connection/{UNKNOWN_ID}/metadata"
    assert error.status_code == 404
    assert error.message == f"Connection '{UNKNOWN_ID}' was not found"
    assert str(error) == (
        f"CData API DELETE /poweredby/connection/{UNKNOWN_ID}/metadata failed with HTTP 404: "
        f"Connection '{UNKNOWN_ID}' was not found"
    )


def test_when_retries_run_out_the_error_names_the_last_status(
    cdata: CData, monkeypatch: pytest.MonkeyPatch, run: Runner
) -> None:
    hook = hook_with(monkeypatch, cdata, max_retries=2)
    cdata.emulator.inject("status", route="list", status=500, times=1)
    cdata.emulator.inject("html", route="list", status=502)  # every time after that
    with pytest.raises(CDataAPIError) as caught:
        run(hook, "list_connections")
    error = caught.value
    assert error.status_code == 502
    assert error.attempts == 3
    assert statuses(cdata, "list") == [500, 502, 502]
    assert error.message == "502 Bad Gateway nginx", "an HTML page becomes a short text snippet"
    assert "HTTP 502 after 3 attempts" in str(error)


def test_when_the_connection_keeps_dropping_the_error_has_no_status(
    cdata: CData, monkeypatch: pytest.MonkeyPatch, run: Runner
) -> None:
    hook = hook_with(monkeypatch, cdata, max_retries=1)
    cdata.emulator.inject("drop", route="list")
    with pytest.raises(CDataAPIError) as caught:
        run(hook, "list_connections")
    assert caught.value.status_code is None
    assert caught.value.attempts == 2
    assert caught.value.message.startswith("connection ")
    assert cdata.emulator.counters.count("list") == 2


def test_max_retries_zero_sends_once(cdata: CData, monkeypatch: pytest.MonkeyPatch, run: Runner) -> None:
    hook = hook_with(monkeypatch, cdata, max_retries=0)
    cdata.emulator.inject("status", route="list", status=503, times=1)
    with pytest.raises(CDataAPIError, match="HTTP 503"):
        run(hook, "list_connections")
    assert statuses(cdata, "list") == [503]


def test_a_refused_connection_is_retried_then_reported(
    monkeypatch: pytest.MonkeyPatch, cdata: CData, run: Runner
) -> None:
    hook = hook_with(monkeypatch, cdata, max_retries=2)
    assert hook.settings.max_retries == 2  # read the connection while the emulator still runs
    cdata.emulator.stop()
    with pytest.raises(CDataAPIError) as caught:
        run(hook, "list_connections")
    assert caught.value.status_code is None
    assert caught.value.attempts == 3
    assert "connection error" in caught.value.message


# -- answers that are not what the route promises (a plain server: the emulator always keeps its promises)
class PlainServer:
    """A loopback HTTP server answering every request with one fixed response, recording the headers.

    ``{authorization}`` in the body is replaced by the request's Authorization header.
    """

    def __init__(self) -> None:
        self.status = 200
        self.content_type = "text/html"
        self.body = b"<html><body><h1>Welcome to nginx!</h1></body></html>"
        self.headers: list[dict[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                self.rfile.read(length)
                server.headers.append(dict(self.headers.items()))
                body = server.body.replace(b"{authorization}", self.headers["Authorization"].encode())
                self.send_response(server.status)
                self.send_header("Content-Type", server.content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_DELETE = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/api"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def plain(cdata: CData, monkeypatch: pytest.MonkeyPatch) -> Iterator[PlainServer]:
    server = PlainServer()
    connection = {**cdata_connection(cdata), "host": server.url}
    monkeypatch.setenv("AIRFLOW_CONN_CDATA_DEFAULT", json.dumps(connection))
    yield server
    server.stop()


@pytest.mark.parametrize(
    ("call", "content_type", "body", "fragment"),
    [
        (("list_connections", ()), "text/html", b"<h1>Welcome to nginx!</h1>", "not the JSON"),
        (("list_connections", ()), "application/json", b'{"items": []}', "without a connections list"),
        (
            ("list_connections", ()),
            "application/json",
            b'{"connections": [1, 2]}',
            "connections list of objects",
        ),
        (("create_connection", ("Salesforce", REDIRECT)), "application/json", b"{}", "without a redirectURL"),
        (
            ("create_connection", ("Salesforce", REDIRECT)),
            "application/json",
            b'{"redirectURL": 5}',
            "redirectURL",
        ),
        (("edit_connection", (UNKNOWN_ID, REDIRECT)), "text/plain", b"", "empty body"),
    ],
)
def test_a_200_without_the_promised_json_is_an_api_error(
    plain: PlainServer,
    run: Runner,
    call: tuple[str, tuple[Any, ...]],
    content_type: str,
    body: bytes,
    fragment: str,
) -> None:
    plain.content_type, plain.body = content_type, body
    name, args = call
    with pytest.raises(CDataAPIError) as caught:
        run(CDataHook(), name, *args)
    assert caught.value.status_code == 200
    assert fragment in caught.value.message
    assert len(plain.headers) == 1, "a wrong 200 is not retried"


def test_requests_carry_user_agent_bearer_token_and_json(plain: PlainServer, run: Runner) -> None:
    plain.body = b'{"redirectURL": "https://cloud.example/oem?token=abc.def.ghi"}'
    plain.content_type = "application/json"
    assert run(CDataHook(), "create_connection", "Salesforce", REDIRECT) == (
        "https://cloud.example/oem?token=abc.def.ghi"
    )
    (headers,) = plain.headers
    assert headers["User-Agent"].startswith(f"airflow-provider-cdata/{__version__} ")
    assert headers["Authorization"].startswith("Bearer ey")
    assert headers["Content-Type"] == "application/json"
    assert headers["Accept"] == "application/json"


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (b'{"error": {"code": 418, "message": "nested message"}}', "application/json", "nested message"),
        (b'{"message": "top-level message"}', "application/json", "top-level message"),
        (b'{"error": "plain error string"}', "application/json", "plain error string"),
        (b'{"detail": "fastapi style"}', "application/json", "fastapi style"),
        (b'{"title": "problem+json title", "status": 418}', "application/problem+json", "problem+json title"),
        (b'{"unexpected": true}', "application/json", '{"unexpected": true}'),
        (b"  plain\n\n text   body ", "text/plain", "plain text body"),
        (
            b"<html><head><title>T</title><style>p{}</style></head><body><p>Body  text</p></body></html>",
            "text/html",
            "Body text",
        ),
        (b"", "text/plain", "I'm a Teapot"),
        (b"x" * 5000, "text/plain", "x" * 197 + "..."),
    ],
)
def test_error_messages_come_from_json_or_a_short_text_snippet(
    plain: PlainServer, body: bytes, content_type: str, expected: str
) -> None:
    plain.status, plain.body, plain.content_type = 418, body, content_type
    with pytest.raises(CDataAPIError) as caught:
        CDataHook().list_connections()
    assert caught.value.status_code == 418
    assert caught.value.message == expected


def test_an_error_body_echoing_the_token_is_scrubbed(plain: PlainServer, run: Runner) -> None:
    plain.status, plain.content_type = 400, "text/plain"
    plain.body = b"bad request with Authorization: {authorization}"
    with pytest.raises(CDataAPIError) as caught:
        run(CDataHook(), "list_connections")
    token = plain.headers[0]["Authorization"].removeprefix("Bearer ")
    assert token.count(".") == 2
    assert token not in str(caught.value)
    assert caught.value.message == "bad request with Authorization: Bearer ***"


# -- the shared async client -------------------------------------------------------------------------------
def client_of(hook: CDataHook) -> Any:
    """The shared aiohttp session the hook's async transport holds now (None before its first call)."""
    return hook._atransport.client if hook._atransport is not None else None


def test_async_hooks_on_one_loop_share_one_client_and_its_connections(
    cdata: CData, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_connection(monkeypatch, cdata)
    cdata.emulator.add_connection(cdata.account_id)

    async def poll_with_many_hooks() -> tuple[int, int]:
        hooks = [CDataHook() for _ in range(50)]
        for _ in range(3):  # three polling rounds, 50 triggers each, concurrently
            results = await asyncio.gather(*(hook.alist_connections() for hook in hooks))
            assert all(len(result) == 1 for result in results)
        clients = {id(client_of(hook)) for hook in hooks}
        for hook in hooks:
            await hook.aclose()
        return len(clients), sum(hook.tokens_minted for hook in hooks)

    clients, minted = asyncio.run(poll_with_many_hooks())
    assert clients == 1
    assert minted == 1, "50 hooks share the process-wide token cache"
    assert cdata.emulator.counters.count("list", 200) == 150
    # One pool: at most one connection per concurrent request, reused across the rounds.
    assert cdata.emulator.counters.connections_accepted <= 50


def test_the_last_aclose_closes_the_shared_client_and_a_new_loop_gets_a_new_one(
    cdata_hook_env: CDataHook, cdata: CData
) -> None:
    from airflow_provider_cdata.transport.aio import shared_clients

    async def use_two_hooks() -> Any:
        first, second = CDataHook(), CDataHook()
        await first.alist_connections()
        await second.alist_connections()
        client = client_of(first)
        assert client is client_of(second)
        assert shared_clients.users(first.settings.api_url) == 2
        await first.aclose()
        assert not client.closed
        await second.aclose()
        assert client.closed
        return client

    first_client = asyncio.run(use_two_hooks())
    second_client = asyncio.run(use_two_hooks())
    assert first_client is not second_client


def test_a_hook_moved_to_a_new_event_loop_gets_a_new_client(cdata_hook_env: CDataHook, cdata: CData) -> None:
    async def list_without_closing(hook: CDataHook) -> Any:
        await hook.alist_connections()
        return client_of(hook)

    # The first loop closes with the client still open (a triggerer restarting its loop, a test).
    first = asyncio.run(list_without_closing(cdata_hook_env))
    second = asyncio.run(list_without_closing(cdata_hook_env))
    assert second is not first
    assert cdata.emulator.counters.count("list", 200) == 2


def test_async_calls_never_read_the_connection_the_blocking_way(
    cdata_hook_env: CDataHook, monkeypatch: pytest.MonkeyPatch
) -> None:
    def blocking(*_: Any) -> Any:
        raise AssertionError("the sync get_connection was called from async code")

    monkeypatch.setattr(CDataHook, "get_connection", classmethod(blocking))

    async def list_and_close() -> Any:
        try:
            return await cdata_hook_env.alist_connections()
        finally:
            await cdata_hook_env.aclose()

    assert asyncio.run(list_and_close()) == []


def test_concurrent_first_async_calls_read_the_connection_once(
    cdata_hook_env: CDataHook, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A triggerer's first poll burst on a new hook: one read of the connection (and one key load),
    not one per call, while the others wait for it."""
    reads: list[str] = []
    real = CDataHook.aget_connection.__func__  # type: ignore[attr-defined]

    async def counting(cls: type[CDataHook], conn_id: str) -> Any:
        reads.append(conn_id)
        return await real(cls, conn_id)

    monkeypatch.setattr(CDataHook, "aget_connection", classmethod(counting))

    async def burst() -> list[Any]:
        try:
            results: list[Any] = await asyncio.gather(
                *(cdata_hook_env.alist_connections() for _ in range(20))
            )
            return results
        finally:
            await cdata_hook_env.aclose()

    assert asyncio.run(burst()) == [[]] * 20
    assert reads == [cdata_hook_env.cdata_conn_id]


# -- the policy's arithmetic ---------------------------------------------------------------------------------
def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    policy = RetryPolicy(backoff_base=1.0, backoff_max=5.0)
    for retry, step in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (9, 5.0)]:
        waits = [policy.wait_seconds(None, retry) for _ in range(200)]
        assert all(step / 2 <= wait <= step for wait in waits)
        assert len(set(waits)) > 1, "jittered"


def test_retry_after_wins_over_backoff_and_is_capped() -> None:
    policy = RetryPolicy(backoff_base=1.0, retry_after_cap=60.0)
    assert policy.wait_seconds(CDataAPIError("GET", "/x", 429, "slow down", retry_after=7.0), 1) == 7.0
    assert policy.wait_seconds(CDataAPIError("GET", "/x", 429, "slow down", retry_after=3600.0), 1) == 60.0


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("2", 2.0), ("0.5", 0.5), (" 3 ", 3.0), ("-3", 0.0), ("soon", None), ("", None)],
)
def test_retry_after_header_forms(header: str, seconds: float | None) -> None:
    from airflow_provider_cdata.transport.answers import retry_after_seconds

    assert retry_after_seconds(header) == seconds


def test_retry_after_as_a_date() -> None:
    from email.utils import formatdate

    from airflow_provider_cdata.transport.answers import retry_after_seconds

    ahead = retry_after_seconds(formatdate(time.time() + 30, usegmt=True))
    assert ahead is not None
    assert 28 <= ahead <= 30
    assert retry_after_seconds(formatdate(time.time() - 30, usegmt=True)) == 0.0


def test_closed_loops_do_not_keep_their_clients(cdata_hook_env: CDataHook) -> None:
    from airflow_provider_cdata.transport.aio import shared_clients

    async def list_without_closing() -> None:
        await CDataHook().alist_connections()

    for _ in range(3):
        asyncio.run(list_without_closing())

    async def count_loops() -> int:
        await CDataHook().alist_connections()
        return len(shared_clients._clients)

    assert asyncio.run(count_loops()) == 1, "only the running loop's clients are kept"
