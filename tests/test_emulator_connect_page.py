"""The customer's connect page, end to end over HTTP: load it, post the form, follow the redirect."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from airflow_provider_cdata.emulator import ConnectFlowError, Emulator, KeyPair, complete_flow
from tests.conftest import CData

TIMEOUT = 10
REDIRECT = "https://app.example.com/onboarded?customer=42"


def edit_url(cdata: CData, connection_id: str) -> str:
    answer = requests.post(
        f"{cdata.base_url}/poweredby/connection/edit/{connection_id}",
        json={"redirectURL": REDIRECT},
        headers=cdata.headers(),
        timeout=TIMEOUT,
    )
    answer.raise_for_status()
    url: str = answer.json()["redirectURL"]
    return url


def listed(cdata: CData) -> list[dict[str, Any]]:
    answer = requests.get(
        f"{cdata.base_url}/poweredby/connection/list", headers=cdata.headers(), timeout=TIMEOUT
    )
    connections: list[dict[str, Any]] = answer.json()["connections"]
    return connections


def test_page_form_save_redirect_and_listing_by_hand(cdata: CData) -> None:
    url = cdata.connect_url(REDIRECT, name="Acme Salesforce", externalId="run-1")
    page = requests.get(url, timeout=TIMEOUT)
    assert page.status_code == 200
    assert page.headers["referrer-policy"] == "no-referrer"
    assert 'value="Acme Salesforce"' in page.text
    assert "Save &amp; Test" in page.text
    assert "Return without saving" in page.text
    token = parse_qs(urlsplit(url).query)["token"][0]

    answer = requests.post(
        url.split("?")[0],
        data={"token": token, "name": "Acme Salesforce", "user": "ann", "api_key": "k", "action": "save"},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert answer.status_code == 303
    location = urlsplit(answer.headers["location"])
    params = parse_qs(location.query)
    assert f"{location.scheme}://{location.netloc}{location.path}" == "https://app.example.com/onboarded"
    assert params["customer"] == ["42"], "the caller's own query parameters are kept"
    assert params["cdata_connection_status"] == ["success"]
    assert params["cdata_connection_name"] == ["Acme Salesforce"]

    (connection,) = listed(cdata)
    assert connection["id"] == params["cdata_connection_id"][0]
    assert connection["externalId"] == "run-1"
    assert connection["dataSource"] == "Salesforce"
    assert connection["status"] == "Authenticated"


def test_python_helper_completes_a_flow_with_the_pages_own_requests(cdata: CData) -> None:
    params = complete_flow(cdata.connect_url(REDIRECT))
    assert params["cdata_connection_status"] == "success"
    assert params["cdata_connection_name"] == "Salesforce1", "a default name like CData's"
    routes = [r.route for r in cdata.emulator.requests() if r.route.startswith("connect")]
    assert routes == ["connect_page", "connect_submit"]
    assert [c["id"] for c in listed(cdata)] == [params["cdata_connection_id"]]


def test_an_empty_api_key_saves_a_not_authenticated_connection(cdata: CData) -> None:
    params = complete_flow(cdata.connect_url(REDIRECT), api_key="")
    assert params["cdata_connection_status"] == "error"
    assert listed(cdata)[0]["status"] == "NotAuthenticated"


def test_return_without_saving_appends_status_none_and_creates_nothing(cdata: CData) -> None:
    params = complete_flow(cdata.connect_url(REDIRECT), save=False)
    assert params == {"customer": "42", "cdata_connection_status": "none"}
    assert listed(cdata) == []


def test_edit_flow_updates_the_connection(cdata: CData) -> None:
    connection = cdata.emulator.add_connection(cdata.account_id, "MailChimp", name="old", last_modified=0)
    params = complete_flow(edit_url(cdata, connection["id"]), name="renamed")
    assert params["cdata_connection_id"] == connection["id"]
    (updated,) = listed(cdata)
    assert updated["name"] == "renamed"
    assert updated["lastModified"] > connection["lastModified"]


def test_an_expired_flow_token_shows_an_error_page_and_changes_nothing(cdata: CData) -> None:
    url = cdata.connect_url(REDIRECT)
    cdata.emulator.clock.advance(181)
    page = requests.get(url, timeout=TIMEOUT)
    assert page.status_code == 401
    assert "expired" in page.text
    with pytest.raises(ConnectFlowError) as failure:
        complete_flow(url)
    assert failure.value.status == 401
    token = parse_qs(urlsplit(url).query)["token"][0]
    posted = requests.post(
        url.split("?")[0], data={"token": token, "action": "save", "api_key": "k"}, timeout=TIMEOUT
    )
    assert posted.status_code == 401
    assert cdata.emulator.connections() == []


def test_the_flow_token_lifetime_is_configurable(keys: KeyPair) -> None:
    with Emulator(flow_token_ttl=5) as emu:
        parent = emu.register_parent(keys.public_pem)
        cdata = CData(emu, keys, parent, emu.add_account(parent)["id"])
        url = cdata.connect_url(REDIRECT)
        emu.clock.advance(6)
        assert requests.get(url, timeout=TIMEOUT).status_code == 401


def test_a_forged_flow_token_is_refused(cdata: CData) -> None:
    url = cdata.connect_url(REDIRECT)
    token = parse_qs(urlsplit(url).query)["token"][0]
    head, body, signature = token.split(".")
    forged = f"{head}.{body}.{signature[::-1]}"
    page = requests.get(url.replace(token, forged), timeout=TIMEOUT)
    assert page.status_code == 401
    assert "not valid" in page.text
    posted = requests.post(url.split("?")[0], data={"token": forged, "action": "save"}, timeout=TIMEOUT)
    assert posted.status_code == 401
    assert cdata.emulator.connections() == []


def test_a_create_token_cannot_be_replayed_against_an_edit_page(cdata: CData) -> None:
    connection = cdata.emulator.add_connection(cdata.account_id)
    token = parse_qs(urlsplit(cdata.connect_url(REDIRECT)).query)["token"][0]
    root = cdata.emulator.root_url
    page = requests.get(f"{root}/oem/user/connections/edit/{connection['id']}?token={token}", timeout=TIMEOUT)
    assert page.status_code == 401


def test_two_pending_flows_with_one_external_id_create_only_one_connection(cdata: CData) -> None:
    first = cdata.connect_url(REDIRECT, externalId="once")
    second = cdata.connect_url(REDIRECT, externalId="once")
    complete_flow(first)
    with pytest.raises(ConnectFlowError) as failure:
        complete_flow(second)
    assert failure.value.status == 409
    assert len(listed(cdata)) == 1


def test_page_escapes_what_it_shows(cdata: CData) -> None:
    page = requests.get(cdata.connect_url(REDIRECT, name='"><script>alert(1)</script>'), timeout=TIMEOUT)
    assert "<script>" not in page.text
    assert "&lt;script&gt;" in page.text
