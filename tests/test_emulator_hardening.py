"""The emulator's own inputs, sent as a hostile client would (issue 16, defects 13 to 15).

Every refusal is a JSON error with a 4xx status, and the emulator stays usable after it.
"""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from tests.conftest import CData, _private_key

TIMEOUT = 10
LIST = "/poweredby/connection/list"
DEEP = 100_000  # far past Python's recursion limit


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def error_message(answer: requests.Response, status: int) -> str:
    assert answer.status_code == status, answer.text[:300]
    assert answer.headers["content-type"] == "application/json"
    message: str = answer.json()["error"]["message"]
    return message


def list_ok(cdata: CData) -> None:
    answer = requests.get(f"{cdata.base_url}{LIST}", headers=cdata.headers(), timeout=TIMEOUT)
    assert answer.status_code == 200, answer.text[:300]


# -- 13: deeply nested JSON ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path",
    ["/poweredby/connection/create", "/poweredby/connection/edit/{id}", "/poweredby/account/create"],
)
def test_a_deeply_nested_body_is_a_json_400_not_a_500(cdata: CData, path: str) -> None:
    connection = cdata.emulator.add_connection(cdata.account_id)
    url = f"{cdata.base_url}{path.format(id=connection['id'])}"
    for body in (nested(DEEP), '{"dataSource": ' + nested(40) + "}"):
        answer = requests.post(url, data=body, headers=cdata.headers(), timeout=TIMEOUT)
        assert "nested more than" in error_message(answer, 400)
    list_ok(cdata)
    log = requests.get(f"{cdata.emulator.root_url}/_emulator/log", timeout=TIMEOUT)
    assert log.status_code == 200, "the request log still renders"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed_jwt(cdata: CData, payload: str, header: str = '{"alg": "RS256", "typ": "JWT"}') -> str:
    """A JWT over raw JSON text, signed with the parent's key: JSON no JWT library would write."""
    signing_input = f"{_b64(header.encode())}.{_b64(payload.encode())}"
    key: RSAPrivateKey = _private_key(cdata.keys.private_pem)
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64(signature)}"


def claims_json(cdata: CData, **raw: str) -> str:
    """The usual claims as JSON text, with ``raw`` values spliced in as written (``exp="Infinity"``)."""
    token = json.loads(base64.urlsafe_b64decode(cdata.token().split(".")[1] + "=="))
    fields = {k: json.dumps(v) for k, v in token.items()}
    fields.update(raw)
    return "{" + ", ".join(f'"{k}": {v}' for k, v in fields.items()) + "}"


def test_a_jwt_with_a_deeply_nested_header_or_payload_is_a_401(cdata: CData) -> None:
    for token in (
        signed_jwt(cdata, claims_json(cdata, extra=nested(5000))),
        signed_jwt(cdata, claims_json(cdata), header='{"alg": "RS256", "x": ' + nested(5000) + "}"),
    ):
        answer = requests.get(
            f"{cdata.base_url}{LIST}", headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT
        )
        assert "nested more than" in error_message(answer, 401)
    list_ok(cdata)


def test_a_connect_link_whose_token_header_is_deeply_nested_shows_the_error_page(cdata: CData) -> None:
    """A guard more than a fix: PyJWT already turns this into a DecodeError."""
    url = cdata.connect_url()
    token = parse_qs(urlsplit(url).query)["token"][0]
    forged = _b64(('{"alg": "HS256", "x": ' + nested(5000) + "}").encode()) + token[token.index(".") :]
    answer = requests.get(url.replace(token, forged), timeout=TIMEOUT)
    assert answer.status_code == 401, answer.text[:300]
    assert "not valid" in answer.text


# -- 14: the admin routes' input -------------------------------------------------------------------
BAD_FAULT_RULES: dict[str, tuple[Any, str]] = {
    "status as text": ({"kind": "status", "status": "abc"}, "status"),
    "status not an error": ({"kind": "status", "status": 200}, "status"),
    "status out of range": ({"kind": "status", "status": 1000}, "status"),
    "status as a boolean": ({"kind": "status", "status": True}, "status"),
    "times as text": ({"kind": "status", "times": "x"}, "times"),
    "negative times": ({"kind": "status", "times": -1}, "times"),
    "rate as text": ({"kind": "status", "rate": "0.5"}, "rate"),
    "seconds as text": ({"kind": "latency", "seconds": "abc"}, "seconds"),
    "negative seconds": ({"kind": "latency", "seconds": -1}, "seconds"),
    "endless seconds": ({"kind": "latency", "seconds": 1e400}, "seconds"),
    "retry_after as text": ({"kind": "status", "status": 429, "retry_after": "soon"}, "retry_after"),
    "retry_after endless": ({"kind": "status", "status": 429, "retry_after": 1e400}, "retry_after"),
    "retry_after_date as text": ({"kind": "status", "retry_after_date": "yes"}, "retry_after_date"),
    "route as a number": ({"kind": "drop", "route": 5}, "route"),
    "route misspelt": ({"kind": "drop", "route": "lsit"}, "route"),
    "kind as a list": ({"kind": ["status"]}, "kind"),
    "no kind": ({"status": 503}, "kind"),
    "unknown field": ({"kind": "status", "colour": "red"}, "colour"),
    "fired set by hand": ({"kind": "status", "fired": 3}, "fired"),
    "not an object": (["status"], "object"),
}


@pytest.mark.parametrize("case", list(BAD_FAULT_RULES))
def test_a_bad_fault_rule_is_refused_naming_the_field_and_the_api_keeps_working(
    cdata: CData, case: str
) -> None:
    rule, field = BAD_FAULT_RULES[case]
    root = cdata.emulator.root_url
    answer = requests.post(f"{root}/_emulator/faults", data=json.dumps(rule), timeout=TIMEOUT)
    assert field in error_message(answer, 400)
    assert requests.get(f"{root}/_emulator/faults", timeout=TIMEOUT).json() == []
    list_ok(cdata)


@pytest.mark.parametrize("body", ["{not json", nested(DEEP), ""])
@pytest.mark.parametrize("route", ["faults", "connections"])
def test_admin_routes_refuse_bodies_that_are_not_json_with_a_400(cdata: CData, route: str, body: str) -> None:
    root = cdata.emulator.root_url
    answer = requests.post(f"{root}/_emulator/{route}", data=body, timeout=TIMEOUT)
    assert "JSON" in error_message(answer, 400)
    assert requests.get(f"{root}/_emulator/state", timeout=TIMEOUT).json()["connections"] == []
    list_ok(cdata)


BAD_CONNECTIONS: dict[str, tuple[Any, str]] = {
    "not an object": (["acct"], "object"),
    "no account": ({"name": "x"}, "accountId"),
    "unknown account": ({"accountId": "9d7f6b0a-0000-4000-8000-000000000000"}, "accountId"),
    "account as a number": ({"accountId": 5}, "accountId"),
    "ageDays as text": ({"ageDays": "abc"}, "ageDays"),
    "ageDays endless": ({"ageDays": 1e400}, "ageDays"),
    "ageDays past datetime": ({"ageDays": 1e12}, "ageDays"),
    "negative ageDays": ({"ageDays": -3}, "ageDays"),
    "name as a number": ({"name": 5}, "name"),
    "name as an object": ({"name": {"a": 1}}, "name"),
    "dataSource as a list": ({"dataSource": ["Salesforce"]}, "dataSource"),
    "externalId as a number": ({"externalId": 7}, "externalId"),
    "status null": ({"status": None}, "status"),  # ConnectionListItem requires a status
    "status empty": ({"status": " "}, "status"),
    "status as a number": ({"status": 3}, "status"),
    "unknown field": ({"colour": "red"}, "colour"),
}


@pytest.mark.parametrize("case", list(BAD_CONNECTIONS))
def test_a_bad_seeded_connection_is_refused_naming_the_field_and_nothing_is_stored(
    cdata: CData, case: str
) -> None:
    spec, field = BAD_CONNECTIONS[case]
    if isinstance(spec, dict) and case not in ("no account", "unknown account", "account as a number"):
        spec = {"accountId": cdata.account_id, **spec}
    root = cdata.emulator.root_url
    answer = requests.post(f"{root}/_emulator/connections", data=json.dumps(spec), timeout=TIMEOUT)
    assert field in error_message(answer, 400)
    assert requests.get(f"{root}/_emulator/state", timeout=TIMEOUT).json()["connections"] == []
    list_ok(cdata)


def test_a_good_seeded_connection_is_listed_as_sent(cdata: CData) -> None:
    root = cdata.emulator.root_url
    spec = {
        "accountId": cdata.account_id,
        "dataSource": "Snowflake",
        "name": "Warehouse",
        "externalId": "wh-1",
        "status": "SomethingNew",  # CData's set of statuses is open
        "ageDays": 2.5,
    }
    answer = requests.post(f"{root}/_emulator/connections", json=spec, timeout=TIMEOUT)
    assert answer.status_code == 200, answer.text
    listed = requests.get(f"{cdata.base_url}{LIST}", headers=cdata.headers(), timeout=TIMEOUT).json()
    (connection,) = listed["connections"]
    assert (connection["name"], connection["dataSource"], connection["externalId"]) == (
        "Warehouse",
        "Snowflake",
        "wh-1",
    )
    assert connection["status"] == "SomethingNew"


# -- 15: exp, iat and nbf must be NumericDates -------------------------------------------------------
NOT_NUMERIC_DATES = {
    "exp Infinity": ("exp", "Infinity"),
    "exp 1e400": ("exp", "1e400"),
    "exp NaN": ("exp", "NaN"),
    "iat NaN": ("iat", "NaN"),
    "iat -Infinity": ("iat", "-Infinity"),
    "iat true": ("iat", "true"),
    "nbf Infinity": ("nbf", "Infinity"),
    "nbf NaN": ("nbf", "NaN"),
    "nbf text": ("nbf", '"soon"'),
}


@pytest.mark.parametrize("case", list(NOT_NUMERIC_DATES))
def test_a_jwt_time_claim_that_is_not_a_numeric_date_is_a_401(cdata: CData, case: str) -> None:
    claim, raw = NOT_NUMERIC_DATES[case]
    token = signed_jwt(cdata, claims_json(cdata, **{claim: raw}))
    answer = requests.get(f"{cdata.base_url}{LIST}", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    message = error_message(answer, 401)
    assert claim in message
    assert "NumericDate" in message
    list_ok(cdata)


def test_a_jwt_not_valid_before_a_time_to_come_is_a_401(cdata: CData) -> None:
    future = int(cdata.emulator.clock.now()) + 600
    answer = requests.get(f"{cdata.base_url}{LIST}", headers=cdata.headers(nbf=future), timeout=10)
    assert "nbf" in error_message(answer, 401)
    assert requests.get(f"{cdata.base_url}{LIST}", headers=cdata.headers(nbf=future - 600), timeout=10).ok
