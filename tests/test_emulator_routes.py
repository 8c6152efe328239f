"""Every request is named after the route FastAPI matched: counters, the request log and faults rely on it.

FastAPI 0.137+ keeps included routers, not their routes, in ``app.router.routes``: a name looked up there
is "unknown" for every request (issue 17). The names must hold on every FastAPI the emulator supports.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, MutableMapping
from typing import Any

import fastapi
import pytest
import requests

from airflow_provider_cdata.emulator import complete_flow
from airflow_provider_cdata.emulator.routes import API_ROUTES
from tests.conftest import CData

TIMEOUT = 10
ACCOUNT = "9d7f6b0a-0000-4000-8000-00000000000a"


def calls(cdata: CData, connection_id: str) -> dict[str, tuple[str, str, dict[str, str] | None]]:
    """One call per API route: method, path under the API root, JSON body."""
    redirect = {"dataSource": "Salesforce", "redirectURL": "https://app.example.com/done"}
    return {
        "create": ("POST", "/poweredby/connection/create", redirect),
        "edit": ("POST", f"/poweredby/connection/edit/{connection_id}", redirect),
        "list": ("GET", "/poweredby/connection/list", None),
        "delete": ("DELETE", "/poweredby/connection/delete/9d7f6b0a-0000-4000-8000-000000000001", None),
        "clear_metadata": ("DELETE", f"/poweredby/connection/{connection_id}/metadata", None),
        "clear_metadata_openapi": ("DELETE", f"/poweredby/{connection_id}/metadata", None),
        "sources": ("GET", "/poweredby/sources/list", None),
        "account_create": ("POST", "/poweredby/account/create", {"externalId": "tenant-2"}),
        "account_list": ("GET", "/poweredby/account/list", None),
        "account_get": ("GET", f"/poweredby/account/{cdata.account_id}", None),
        "account_update": ("PUT", f"/poweredby/account/update/{ACCOUNT}", {"accountName": "Renamed"}),
        "account_delete": ("DELETE", f"/poweredby/account/delete/{ACCOUNT}", None),
    }


def call(cdata: CData, method: str, path: str, body: dict[str, str] | None) -> requests.Response:
    return requests.request(
        method, f"{cdata.base_url}{path}", json=body, headers=cdata.headers(), timeout=TIMEOUT
    )


def test_the_calls_cover_every_api_route(cdata: CData) -> None:
    assert sorted(calls(cdata, "x")) == sorted(API_ROUTES)


def test_every_request_is_named_after_its_route_in_the_log_and_the_counters(cdata: CData) -> None:
    connection = cdata.emulator.add_connection(cdata.account_id)
    cdata.emulator.add_account(cdata.parent_id, ACCOUNT)
    for route, (method, path, body) in calls(cdata, connection["id"]).items():
        answer = call(cdata, method, path, body)
        assert answer.status_code == 200, (route, answer.text)
        where = f"{method} {path} on FastAPI {fastapi.__version__}"
        assert cdata.emulator.requests()[-1].route == route, where
        assert cdata.emulator.counters.count(route, 200) == 1, route
    root = cdata.emulator.root_url
    complete_flow(cdata.connect_url())
    requests.get(f"{root}/_emulator/health", timeout=TIMEOUT)
    requests.get(f"{cdata.base_url}/poweredby/no/such/route", headers=cdata.headers(), timeout=TIMEOUT)
    named = [r.route for r in cdata.emulator.requests()[-5:]]
    assert named == ["create", "connect_page", "connect_submit", "admin", "unknown"]
    assert not any(cdata.emulator.counters.in_flight.values()), "every request left the in-flight count"


@pytest.mark.parametrize("route", API_ROUTES)
def test_a_fault_on_a_route_fires_there_and_only_there(cdata: CData, route: str) -> None:
    connection = cdata.emulator.add_connection(cdata.account_id)
    cdata.emulator.add_account(cdata.parent_id, ACCOUNT)
    routes = calls(cdata, connection["id"])
    cdata.emulator.inject("status", status=503, route=route, times=1)
    others: list[Callable[[], requests.Response]] = [
        lambda m=m, p=p, b=b: call(cdata, m, p, b)  # type: ignore[misc]
        for name, (m, p, b) in routes.items()
        if name != route and name not in ("delete", "account_delete", "account_create")
    ]
    assert all(other().status_code == 200 for other in others)
    assert call(cdata, *routes[route]).status_code == 503
    assert cdata.emulator.counters.faults["status"] == 1
    assert [r.fault for r in cdata.emulator.requests(route)] == ["status"]


@pytest.mark.parametrize(
    ("method", "path", "route"),
    [
        ("DELETE", "/api/poweredby/connection/delete/{id}", "delete"),
        ("DELETE", "/api/poweredby/connection/{id}/metadata", "clear_metadata"),
        ("DELETE", "/api/poweredby/{id}/metadata", "clear_metadata_openapi"),
    ],
)
def test_an_answer_without_a_body_is_logged_before_its_headers_go_out(
    cdata: CData, method: str, path: str, route: str
) -> None:
    """An empty answer is whole once its headers are sent, so a client (a test) may read the counters
    before the empty body message: the request must already be there. Driven at the ASGI level, which
    shows the moment each message goes out (over TCP this was a race, lost under load)."""
    connection_id = cdata.emulator.add_connection(cdata.account_id)["id"]
    token = cdata.token().encode()
    seen_at_headers: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            assert dict(message["headers"])[b"content-length"] == b"0"
            seen_at_headers.append(cdata.emulator.counters.count(route, message["status"]))

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path.format(id=connection_id),
        "raw_path": path.format(id=connection_id).encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"authorization", b"Bearer " + token), (b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }
    asyncio.run(cdata.emulator.app(scope, receive, send))
    assert seen_at_headers == [1]
