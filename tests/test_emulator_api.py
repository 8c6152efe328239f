"""The emulator's API routes and auth, driven over real HTTP with plain requests and PyJWT."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from airflow_provider_cdata.emulator import Emulator
from tests.conftest import CData, _private_key

TIMEOUT = 10


def api(cdata: CData, method: str, route: str, **kwargs: Any) -> requests.Response:
    headers = kwargs.pop("headers", None) or cdata.headers()
    return requests.request(method, f"{cdata.base_url}{route}", headers=headers, timeout=TIMEOUT, **kwargs)


def create(cdata: CData, **body: Any) -> requests.Response:
    payload = {"dataSource": "Salesforce", "redirectURL": "https://app.example.com/done", **body}
    return api(cdata, "POST", "/poweredby/connection/create", json=payload)


# -- Create / Edit ------------------------------------------------------------------------------------
def test_create_returns_a_connect_url_on_the_emulators_own_page(cdata: CData) -> None:
    answer = create(cdata, name="Sales", externalId="ext-1")
    assert answer.status_code == 200
    url = answer.json()["redirectURL"]
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert f"{parts.scheme}://{parts.netloc}" == cdata.emulator.root_url
    assert parts.path == "/oem/user/connections/edit"
    assert query["driver"] == ["Salesforce"]
    assert query["redirectUrl"] == ["https://app.example.com/done"]
    assert query["token"][0].count(".") == 2
    record = cdata.emulator.requests("create")[-1]
    assert record.body == {
        "dataSource": "Salesforce",
        "redirectURL": "https://app.example.com/done",
        "name": "Sales",
        "externalId": "ext-1",
    }
    assert record.claims is not None
    assert record.claims["iss"] == cdata.parent_id
    assert record.claims["sub"] == cdata.account_id
    assert record.user_agent.startswith("python-requests/")
    assert cdata.emulator.connections() == [], "create only mints a URL; the customer creates"


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({"dataSource": "NoSuchSource", "redirectURL": "https://a.example"}, "Unknown data source"),
        ({"dataSource": "Salesforce"}, "redirectURL is required"),
        ({"dataSource": "Salesforce", "redirectURL": "/relative"}, "absolute http(s) URL"),
        ({"dataSource": "", "redirectURL": "https://a.example"}, "dataSource is required"),
    ],
)
def test_create_rejects_bad_bodies_with_400_and_a_message(
    cdata: CData, payload: dict[str, Any], fragment: str
) -> None:
    answer = api(cdata, "POST", "/poweredby/connection/create", json=payload)
    assert answer.status_code == 400
    assert fragment in answer.json()["error"]["message"]


def test_create_with_an_external_id_already_used_answers_409(cdata: CData) -> None:
    cdata.emulator.add_connection(cdata.account_id, external_id="taken")
    answer = create(cdata, externalId="taken")
    assert answer.status_code == 409
    assert "taken" in answer.json()["error"]["message"]


def test_external_ids_are_unique_per_child_account_only(cdata: CData) -> None:
    other = cdata.emulator.add_account(cdata.parent_id)["id"]
    cdata.emulator.add_connection(other, external_id="shared")
    assert create(cdata, externalId="shared").status_code == 200


def test_edit_returns_the_edit_page_url_and_unknown_ids_answer_404(cdata: CData) -> None:
    connection = cdata.emulator.add_connection(cdata.account_id, "MailChimp")
    answer = api(
        cdata,
        "POST",
        f"/poweredby/connection/edit/{connection['id']}",
        json={"redirectURL": "https://app.example.com/x"},
    )
    assert answer.status_code == 200
    parts = urlsplit(answer.json()["redirectURL"])
    assert parts.path == f"/oem/user/connections/edit/{connection['id']}"
    assert parse_qs(parts.query)["driver"] == ["MailChimp"]

    missing = api(
        cdata,
        "POST",
        "/poweredby/connection/edit/2b0f0a4e-1d55-4a4c-9d1c-6d1f8f0e8e11",
        json={"redirectURL": "https://app.example.com/x"},
    )
    assert missing.status_code == 404
    assert "was not found" in missing.json()["error"]["message"]


def test_a_connection_of_another_child_account_is_not_found(cdata: CData) -> None:
    other = cdata.emulator.add_account(cdata.parent_id)["id"]
    theirs = cdata.emulator.add_connection(other)
    answer = api(cdata, "DELETE", f"/poweredby/connection/{theirs['id']}/metadata")
    assert answer.status_code == 404
    api(cdata, "DELETE", f"/poweredby/connection/delete/{theirs['id']}")
    assert cdata.emulator.connection(theirs["id"]) is not None


# -- List ------------------------------------------------------------------------------------------
def test_list_shows_the_documented_fields_and_honours_both_filters(cdata: CData) -> None:
    emu = cdata.emulator
    sales = emu.add_connection(cdata.account_id, "Salesforce", name="S1", external_id="Ext-A")
    emu.add_connection(cdata.account_id, "Salesforce", name="S2", external_id="ext-a")
    emu.add_connection(cdata.account_id, "MailChimp", name="M1")
    emu.add_connection(emu.add_account(cdata.parent_id)["id"], "Salesforce", name="other account")

    every = api(cdata, "GET", "/poweredby/connection/list").json()["connections"]
    assert sorted(c["name"] for c in every) == ["M1", "S1", "S2"]
    listed = next(c for c in every if c["id"] == sales["id"])
    # ConnectionListItem of CData's OpenAPI description: every field, always.
    assert set(listed) == {"id", "name", "dataSource", "lastModified", "externalId", "mcpUrl", "status"}
    assert listed["lastModified"].endswith("Z")
    assert listed["mcpUrl"] == f"/mcp/connections/{sales['id']}"
    assert listed["status"] == "Authenticated"
    mail = next(c for c in every if c["name"] == "M1")
    assert "externalId" in mail, "no external id: null, not left out"
    assert mail["externalId"] is None

    by_driver = api(cdata, "GET", "/poweredby/connection/list", params={"driver": "salesFORCE"}).json()
    assert sorted(c["name"] for c in by_driver["connections"]) == ["S1", "S2"]
    by_external = api(cdata, "GET", "/poweredby/connection/list", params={"externalId": "Ext-A"}).json()
    assert [c["name"] for c in by_external["connections"]] == ["S1"], "externalId is case-sensitive"
    assert cdata.emulator.requests("list")[-1].query == {"externalId": "Ext-A"}


def test_a_conditional_connection_is_listed_with_that_status(cdata: CData) -> None:
    connection = cdata.emulator.add_connection(cdata.account_id)
    cdata.emulator.set_status(connection["id"], "Conditional")
    (listed,) = api(cdata, "GET", "/poweredby/connection/list").json()["connections"]
    assert listed["status"] == "Conditional"
    assert listed["lastModified"] == connection["lastModified"], "a status change is not a save"


def test_last_modified_has_as_many_fraction_digits_as_it_needs(cdata: CData) -> None:
    emu = cdata.emulator
    emu.add_connection(cdata.account_id, name="a", last_modified=1696963413.28)
    emu.add_connection(cdata.account_id, name="b", last_modified=1722634255.154)
    emu.add_connection(cdata.account_id, name="c", last_modified=1722634255.0)
    stamps = {
        c["name"]: c["lastModified"]
        for c in api(cdata, "GET", "/poweredby/connection/list").json()["connections"]
    }
    assert stamps == {
        "a": "2023-10-10T18:43:33.28Z",
        "b": "2024-08-02T21:30:55.154Z",
        "c": "2024-08-02T21:30:55Z",
    }


# -- Delete and clear metadata -------------------------------------------------------------------------
def test_delete_removes_the_connection_and_is_idempotent(cdata: CData) -> None:
    connection = cdata.emulator.add_connection(cdata.account_id)
    for _ in range(2):
        answer = api(cdata, "DELETE", f"/poweredby/connection/delete/{connection['id']}")
        assert answer.status_code == 200
        assert answer.content == b""
    assert cdata.emulator.connections() == []


def test_delete_and_clear_refuse_an_id_that_is_not_a_uuid(cdata: CData) -> None:
    for route in ("/poweredby/connection/delete/not-a-uuid", "/poweredby/connection/not-a-uuid/metadata"):
        answer = api(cdata, "DELETE", route)
        assert answer.status_code == 400
        assert "not a valid connection id" in answer.json()["error"]["message"]


@pytest.mark.parametrize(
    ("route", "name"),
    [
        ("/poweredby/connection/{id}/metadata", "clear_metadata"),
        ("/poweredby/{id}/metadata", "clear_metadata_openapi"),
    ],
)
def test_clear_metadata_on_both_documented_routes(cdata: CData, route: str, name: str) -> None:
    connection = cdata.emulator.add_connection(cdata.account_id)
    answer = api(cdata, "DELETE", route.format(id=connection["id"]))
    assert answer.status_code == 200
    assert cdata.emulator.connection(connection["id"])["metadataClears"] == 1  # type: ignore[index]
    assert cdata.emulator.counters.count(name, 200) == 1
    missing = api(cdata, "DELETE", route.format(id="7f1c3f5e-7e0e-4a8e-9b3f-1f6f1b1f1b1f"))
    assert missing.status_code == 404
    assert "was not found" in missing.json()["error"]["message"]


# -- Neighbouring routes ----------------------------------------------------------------------------
def test_sources_list(cdata: CData) -> None:
    sources = api(cdata, "GET", "/poweredby/sources/list").json()["dataSources"]
    assert {"dataSource": "Salesforce"} in sources


def test_account_routes(cdata: CData) -> None:
    parent_only = {"Authorization": f"Bearer {cdata.token(sub=None)}"}
    made = api(
        cdata,
        "POST",
        "/poweredby/account/create",
        json={"externalId": "acme", "accountName": "Acme"},
        headers=parent_only,
    )
    assert made.status_code == 200
    account = made.json()
    assert set(account) == {"accountId", "externalId", "createdTime"}
    again = api(cdata, "POST", "/poweredby/account/create", json={"externalId": "acme"}, headers=parent_only)
    assert again.status_code == 409

    listed = api(cdata, "GET", "/poweredby/account/list", headers=parent_only).json()["accounts"]
    assert {a["externalId"] for a in listed} == {"customer-1", "acme"}
    by_external = api(cdata, "GET", "/poweredby/account/acme", headers=parent_only).json()
    by_id = api(cdata, "GET", f"/poweredby/account/{account['accountId']}", headers=parent_only).json()
    assert by_external == by_id
    assert by_id["accountName"] == "Acme"

    gone = api(cdata, "DELETE", f"/poweredby/account/delete/{account['accountId']}", headers=parent_only)
    assert gone.status_code == 200
    assert api(cdata, "GET", "/poweredby/account/acme", headers=parent_only).status_code == 404


# -- Auth ---------------------------------------------------------------------------------------
def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(cdata: CData) -> str:
    header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    claims = json.loads(base64.urlsafe_b64decode(cdata.token().split(".")[1] + "=="))
    return f"{header}.{_b64(json.dumps(claims).encode())}."


def _hs256_with_public_key(cdata: CData) -> str:
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = cdata.token().split(".")[1]
    signing_input = f"{header}.{body}".encode()
    signature = hmac.new(cdata.keys.public_pem.encode(), signing_input, hashlib.sha256).digest()
    return f"{header}.{body}.{_b64(signature)}"


AUTH_CASES: dict[str, tuple[Any, int, str]] = {
    "missing header": (lambda c, o: None, 401, "Missing Authorization"),
    "basic scheme": (lambda c, o: "Basic dXNlcjpwYXNz", 401, "Bearer"),
    "garbage token": (lambda c, o: "Bearer not.a.jwt", 401, "Malformed JWT"),
    "alg none": (lambda c, o: f"Bearer {_unsigned(c)}", 401, "RS256"),
    "HS256 with the public key as secret": (lambda c, o: f"Bearer {_hs256_with_public_key(c)}", 401, "RS256"),
    "wrong key": (lambda c, o: f"Bearer {c.token(key=_private_key(o.private_pem))}", 401, "signature"),
    "expired": (
        lambda c, o: f"Bearer {c.token(iat=int(time.time()) - 600, exp=int(time.time()) - 1)}",
        401,
        "expired",
    ),
    "iat in the future": (lambda c, o: f"Bearer {c.token(iat=int(time.time()) + 600)}", 401, "future"),
    "wrong tokenType": (lambda c, o: f"Bearer {c.token(tokenType='access')}", 401, "tokenType"),
    "no iss": (lambda c, o: f"Bearer {c.token(iss=None)}", 401, "iss"),
    "unknown parent": (
        lambda c, o: f"Bearer {c.token(iss='9d7f6b0a-0000-4000-8000-000000000000')}",
        401,
        "No public key",
    ),
    "unknown child": (
        lambda c, o: f"Bearer {c.token(sub='9d7f6b0a-0000-4000-8000-000000000001')}",
        403,
        "not a child account",
    ),
    "no sub on a connection call": (lambda c, o: f"Bearer {c.token(sub=None)}", 403, "sub"),
}


@pytest.mark.parametrize("case", list(AUTH_CASES))
def test_auth_rejections(cdata: CData, other_keys: Any, case: str) -> None:
    make, status, fragment = AUTH_CASES[case]
    authorization = make(cdata, other_keys)
    headers = {"Authorization": authorization} if authorization else {}
    answer = requests.get(f"{cdata.base_url}/poweredby/connection/list", headers=headers, timeout=TIMEOUT)
    assert answer.status_code == status
    assert answer.headers["content-type"] == "application/json"
    assert fragment in answer.json()["error"]["message"]


def test_a_child_of_another_parent_is_forbidden(cdata: CData, other_keys: Any) -> None:
    other_parent = cdata.emulator.register_parent(other_keys.public_pem)
    their_child = cdata.emulator.add_account(other_parent)["id"]
    answer = api(cdata, "GET", "/poweredby/connection/list", headers=cdata.headers(sub=their_child))
    assert answer.status_code == 403


def test_the_request_log_holds_claims_but_never_the_token(cdata: CData) -> None:
    token = cdata.token()
    api(cdata, "GET", "/poweredby/connection/list", headers={"Authorization": f"Bearer {token}"})
    logged = json.dumps([r.as_dict() for r in cdata.emulator.requests()])
    assert cdata.parent_id in logged
    assert token not in logged
    assert token.split(".")[2] not in logged


# -- Counters ------------------------------------------------------------------------------------------
def test_counters_see_one_tcp_connection_for_a_keep_alive_session(cdata: CData) -> None:
    cdata.emulator.reset_counters()
    with requests.Session() as session:
        for _ in range(20):
            session.get(
                f"{cdata.base_url}/poweredby/connection/list", headers=cdata.headers(), timeout=TIMEOUT
            )
    counters = cdata.emulator.counters
    assert counters.connections_accepted == 1
    assert counters.count("list", 200) == 20
    for _ in range(3):
        requests.get(f"{cdata.base_url}/poweredby/connection/list", headers=cdata.headers(), timeout=TIMEOUT)
    assert counters.connections_accepted == 4


def test_admin_routes_report_state_and_counters(cdata: CData) -> None:
    cdata.emulator.add_connection(cdata.account_id, name="seen")
    api(cdata, "GET", "/poweredby/connection/list")
    root = cdata.emulator.root_url
    state = requests.get(f"{root}/_emulator/state", timeout=TIMEOUT).json()
    assert [c["name"] for c in state["connections"]] == ["seen"]
    counters = requests.get(f"{root}/_emulator/counters", timeout=TIMEOUT).json()
    assert {"route": "list", "status": 200, "count": 1} in counters["requests"]


def test_emulator_in_process_starts_on_an_ephemeral_port_and_stops_cleanly() -> None:
    emu = Emulator().start()
    port = emu.port
    assert port != 0
    assert requests.get(f"{emu.root_url}/_emulator/health", timeout=TIMEOUT).json() == {"status": "ok"}
    emu.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/_emulator/health", timeout=2)
