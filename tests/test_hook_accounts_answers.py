"""The Account API's and List Data Sources' answers are untrusted (issue 11): a 200 whose body is not the
shape the route promises is a CDataAPIError keeping the status and the route, and never a token, even
when the server echoes the Authorization header into the body. And every name CData uses for a field
ends in the one shape. A hostile server on loopback answers (tests/test_reliability_hostile.py).
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_cdata.exceptions import CDataAPIError
from airflow_provider_cdata.hooks import CDataHook
from tests.test_hook_calls import Runner, runner_fixture
from tests.test_reliability_hostile import RawServer, hostile, http

__all__ = ["hostile"]  # the fixture, used by name
run = runner_fixture()

ACCOUNT_ID = "3f2b1c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"

CALLS: dict[str, tuple[str, tuple[Any, ...], str]] = {
    "create": ("create_account", (), "/poweredby/account/create"),
    "get": ("get_account", ("acme",), "/poweredby/account/acme"),
    "list": ("list_accounts", (), "/poweredby/account/list"),
    "update": ("update_account", (ACCOUNT_ID, "acme"), f"/poweredby/account/update/{ACCOUNT_ID}"),
    "sources": ("list_data_sources", (), "/poweredby/sources/list"),
}


def echoing(body: Callable[[str], Any]) -> Callable[[socket.socket, bytes], None]:
    """Answer 200 with ``body(token)`` as JSON: the caller's own bearer token planted in the answer."""

    def answer(conn: socket.socket, head: bytes) -> None:
        match = re.search(rb"(?im)^authorization: bearer (\S+)\r?$", head)
        token = match.group(1).decode() if match else ""
        conn.sendall(http(200, json.dumps(body(token)).encode()))

    return answer


# Bodies that are not what the route promises, for each call (the token where a value would be).
BAD_BODIES: dict[str, list[Callable[[str], Any]]] = {
    "create": [lambda t: [t], lambda t: {"accountId": 7, "note": t}, lambda t: {"externalId": t}],
    "get": [lambda t: t, lambda t: {"id": t, "created": 1700000000}, lambda t: {"id": ["x"]}],
    "list": [lambda t: {"accounts": t}, lambda t: {"accounts": [t]}, lambda t: {"accounts": [{"id": None}]}],
    "update": [lambda t: {"id": ACCOUNT_ID, "accountName": {"t": t}}, lambda t: None],
    "sources": [
        lambda t: {"dataSources": t},
        lambda t: {"dataSources": [t]},
        lambda t: {"dataSources": [{"dataSource": 5}]},
        lambda t: {"sources": [{"dataSource": t}]},
    ],
}
CASES = [(call, index) for call, bodies in BAD_BODIES.items() for index in range(len(bodies))]


@pytest.mark.parametrize(("call", "index"), CASES)
def test_a_body_of_the_wrong_shape_is_an_error_with_status_and_route_and_no_token(
    hostile: Callable[[Any], RawServer], run: Runner, call: str, index: int
) -> None:
    server = hostile(echoing(BAD_BODIES[call][index]))
    method, args, route = CALLS[call]
    with pytest.raises(CDataAPIError) as raised:
        run(CDataHook(), method, *args)
    error = raised.value
    assert (error.status_code, error.route) == (200, route)
    token = re.search(rb"(?im)^authorization: bearer (\S+)\r?$", server.requests[0])
    assert token is not None
    sent = token.group(1).decode()
    for text in (str(error), error.message, repr(error)):
        assert sent not in text
        assert not any(piece in text for piece in sent.split(".") if len(piece) >= 16)
    assert len(server.requests) == 1, "a 200 of the wrong shape is not retried"


@pytest.mark.parametrize(
    ("call", "answer", "expected"),
    [
        (
            "create",
            {"accountId": ACCOUNT_ID, "externalId": "acme", "createdTime": "2026-12-02T04:00:00.1Z"},
            {
                "id": ACCOUNT_ID,
                "externalId": "acme",
                "accountName": None,
                "created": "2026-12-02T04:00:00.1Z",
            },
        ),
        (
            "get",
            {
                "id": ACCOUNT_ID,
                "externalId": None,
                "created": "2026-12-02T04:00:00Z",
            },  # older: no accountName
            {"id": ACCOUNT_ID, "externalId": None, "accountName": None, "created": "2026-12-02T04:00:00Z"},
        ),
        (
            "update",
            {"accountId": ACCOUNT_ID, "accountName": "A", "created": "x", "extra": 1},
            {"id": ACCOUNT_ID, "externalId": None, "accountName": "A", "created": "x"},
        ),
    ],
)
def test_every_name_cdata_uses_ends_in_the_one_shape(
    hostile: Callable[[Any], RawServer], run: Runner, call: str, answer: Any, expected: Any
) -> None:
    hostile(echoing(lambda _: answer))
    method, args, _ = CALLS[call]
    assert run(CDataHook(), method, *args) == expected


def test_list_accounts_renames_each_account(hostile: Callable[[Any], RawServer], run: Runner) -> None:
    accounts = [
        {"accountId": ACCOUNT_ID, "createdTime": "t"},
        {"id": "b", "accountName": "B", "created": "u"},
    ]
    hostile(echoing(lambda _: {"accounts": accounts}))
    assert run(CDataHook(), "list_accounts") == [
        {"id": ACCOUNT_ID, "externalId": None, "accountName": None, "created": "t"},
        {"id": "b", "externalId": None, "accountName": "B", "created": "u"},
    ]
