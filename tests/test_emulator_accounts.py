"""The emulator's Account API and List Data Sources (issue 11), over HTTP, as any client sees them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests

from airflow_provider_cdata.emulator import Emulator, KeyPair
from airflow_provider_cdata.emulator.state import DATA_SOURCES
from tests.conftest import CData

TIMEOUT = 10
UNKNOWN_ID = "123e4567-e89b-12d3-a456-426614174000"


def parent_call(cdata: CData, method: str, route: str, **kwargs: Any) -> requests.Response:
    """A request with a parent-level token: no sub, as account calls may be made."""
    headers = {"Authorization": f"Bearer {cdata.token(sub=None)}"}
    return requests.request(method, f"{cdata.base_url}{route}", headers=headers, timeout=TIMEOUT, **kwargs)


def test_create_accepts_an_empty_body_and_answers_cdata_s_names(cdata: CData) -> None:
    made = parent_call(cdata, "POST", "/poweredby/account/create", json={})
    assert made.status_code == 200
    body = made.json()
    assert set(body) == {"accountId", "externalId", "createdTime"}
    assert body["externalId"] is None
    listed = parent_call(cdata, "GET", "/poweredby/account/list").json()["accounts"]
    (shown,) = [a for a in listed if a["id"] == body["accountId"]]
    assert shown == {
        "id": body["accountId"],
        "externalId": None,
        "accountName": None,
        "created": body["createdTime"],
    }
    # Two accounts without an external id are no conflict.
    assert parent_call(cdata, "POST", "/poweredby/account/create", json={}).status_code == 200


def test_a_second_create_with_the_same_external_id_is_a_409_with_a_message(cdata: CData) -> None:
    again = parent_call(cdata, "POST", "/poweredby/account/create", json={"externalId": "customer-1"})
    assert again.status_code == 409
    assert again.json()["error"]["message"] == "An account with externalId 'customer-1' already exists"
    assert len(cdata.emulator.store.list_accounts(cdata.parent_id)) == 1


def test_get_and_delete_of_an_unknown_account_are_404_with_a_message(cdata: CData) -> None:
    got = parent_call(cdata, "GET", f"/poweredby/account/{UNKNOWN_ID}")
    assert (got.status_code, got.json()["error"]["message"]) == (404, f"Account '{UNKNOWN_ID}' was not found")
    gone = parent_call(cdata, "DELETE", f"/poweredby/account/delete/{UNKNOWN_ID}")
    assert (gone.status_code, gone.json()["error"]["message"]) == (
        404,
        f"Account '{UNKNOWN_ID}' was not found",
    )


def test_update_changes_the_given_fields_and_answers_the_account(cdata: CData) -> None:
    route = f"/poweredby/account/update/{cdata.account_id}"
    renamed = parent_call(cdata, "PUT", route, json={"accountName": "Customer One"})
    assert renamed.status_code == 200
    assert renamed.json() == {
        "id": cdata.account_id,
        "externalId": "customer-1",
        "accountName": "Customer One",
        "created": renamed.json()["created"],
    }
    moved = parent_call(cdata, "PUT", route, json={"externalId": "customer-one"}).json()
    assert (moved["externalId"], moved["accountName"]) == ("customer-one", "Customer One")
    assert parent_call(cdata, "GET", "/poweredby/account/customer-one").json() == moved


def test_update_refuses_a_taken_external_id_an_unknown_account_and_a_bad_field(cdata: CData) -> None:
    other = cdata.emulator.add_account(cdata.parent_id, external_id="customer-2")["id"]
    taken = parent_call(cdata, "PUT", f"/poweredby/account/update/{other}", json={"externalId": "customer-1"})
    assert taken.status_code == 409
    unknown = parent_call(cdata, "PUT", f"/poweredby/account/update/{UNKNOWN_ID}", json={"accountName": "x"})
    assert unknown.status_code == 404
    bad = parent_call(cdata, "PUT", f"/poweredby/account/update/{other}", json={"accountName": 5})
    assert (bad.status_code, "accountName" in bad.json()["error"]["message"]) == (400, True)
    assert cdata.emulator.store.find_account(cdata.parent_id, other)["externalId"] == "customer-2"  # type: ignore[index]


def test_account_calls_take_a_token_with_or_without_sub(cdata: CData) -> None:
    with_sub = requests.get(
        f"{cdata.base_url}/poweredby/account/list", headers=cdata.headers(), timeout=TIMEOUT
    )
    without = parent_call(cdata, "GET", "/poweredby/account/list")
    assert with_sub.status_code == without.status_code == 200
    assert with_sub.json() == without.json()


def test_accounts_of_another_parent_are_invisible(cdata: CData, other_keys: KeyPair) -> None:
    other_parent = cdata.emulator.register_parent(other_keys.public_pem)
    theirs = cdata.emulator.add_account(other_parent, external_id="theirs")["id"]
    listed = parent_call(cdata, "GET", "/poweredby/account/list").json()["accounts"]
    assert [a["id"] for a in listed] == [cdata.account_id]
    assert parent_call(cdata, "GET", "/poweredby/account/theirs").status_code == 404
    assert parent_call(cdata, "DELETE", f"/poweredby/account/delete/{theirs}").status_code == 404
    assert cdata.emulator.store.find_account(other_parent, theirs) is not None


def test_every_account_with_connections_is_in_list_accounts(cdata: CData) -> None:
    # A connection can only live in a child account the store knows (the token's sub must be one), so
    # "every child account from List Accounts" covers every account that has connections.
    seeded = cdata.emulator.add_account(cdata.parent_id)
    cdata.emulator.add_connection(seeded["id"])
    cdata.emulator.add_connection(cdata.account_id)
    listed = {a["id"]: a for a in parent_call(cdata, "GET", "/poweredby/account/list").json()["accounts"]}
    assert (
        set(listed)
        == {c["accountId"] for c in cdata.emulator.connections()}
        == {seeded["id"], cdata.account_id}
    )
    assert (
        listed[seeded["id"]]["externalId"] == seeded["id"]
    )  # seeded without one: its id, so it can be found


def test_delete_account_deletes_its_remaining_connections(cdata: CData) -> None:
    kept = cdata.emulator.add_account(cdata.parent_id)["id"]
    cdata.emulator.add_connection(kept)
    for _ in range(2):
        cdata.emulator.add_connection(cdata.account_id)
    gone = parent_call(cdata, "DELETE", f"/poweredby/account/delete/{cdata.account_id}")
    assert gone.status_code == 200
    assert [c["accountId"] for c in cdata.emulator.connections()] == [kept]
    # Its old token names an account that no longer exists: connection calls are refused.
    listed = requests.get(
        f"{cdata.base_url}/poweredby/connection/list", headers=cdata.headers(), timeout=TIMEOUT
    )
    assert listed.status_code == 403


def test_list_data_sources_offers_the_connect_page_s_names(cdata: CData) -> None:
    answer = parent_call(cdata, "GET", "/poweredby/sources/list")
    assert answer.json() == {"dataSources": [{"dataSource": name} for name in DATA_SOURCES]}
    # The names it offers are the ones Create Connection (and its connect page) take.
    for name in ("Salesforce", DATA_SOURCES[-1]):
        made = requests.post(
            f"{cdata.base_url}/poweredby/connection/create",
            json={"dataSource": name, "redirectURL": "https://app.example.com/done"},
            headers=cdata.headers(),
            timeout=TIMEOUT,
        )
        assert made.status_code == 200, made.text


def test_accounts_made_over_http_survive_a_restart_with_state(tmp_path: Path, keys: KeyPair) -> None:
    state = tmp_path / "state.json"
    with Emulator(state_path=state) as first:
        parent = first.register_parent(keys.public_pem)
        cdata = CData(emulator=first, keys=keys, parent_id=parent, account_id=first.add_account(parent)["id"])
        made = parent_call(cdata, "POST", "/poweredby/account/create", json={"externalId": "kept"}).json()
        parent_call(cdata, "PUT", f"/poweredby/account/update/{made['accountId']}", json={"accountName": "K"})
    with Emulator(state_path=state) as second:
        again = CData(emulator=second, keys=keys, parent_id=parent, account_id=cdata.account_id)
        found = parent_call(again, "GET", "/poweredby/account/kept")
        assert found.status_code == 200
        assert (found.json()["id"], found.json()["accountName"]) == (made["accountId"], "K")
