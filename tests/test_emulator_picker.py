"""What CData's OpenAPI description adds to the connect flow, over HTTP: the data-source picker when
Create Connection has no ``dataSource``, ``editableName=false``, and ``Conditional`` connections."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from airflow_provider_cdata.criteria import ConnectionCriteria
from airflow_provider_cdata.emulator import complete_flow
from airflow_provider_cdata.emulator.state import DATA_SOURCES
from airflow_provider_cdata.exceptions import CDataAPIError, CDataValidationError
from airflow_provider_cdata.hooks import CDataHook
from tests.conftest import CData

TIMEOUT = 10
REDIRECT = "https://app.example.com/done"


def token_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["token"][0]


def test_without_a_data_source_the_page_is_the_picker_then_the_picked_sources_form(cdata: CData) -> None:
    url = cdata.connect_url(REDIRECT, dataSource=None)
    assert "driver=" not in url, "no data source: the link names none"
    picker = requests.get(url, timeout=TIMEOUT)
    assert picker.status_code == 200
    assert 'id="picker"' in picker.text
    assert all(f'<option value="{source}">' in picker.text for source in DATA_SOURCES)
    assert 'name="api_key"' not in picker.text, "no settings before a data source is picked"

    form = requests.get(url, params={"driver": "hubspot"}, timeout=TIMEOUT)
    assert "Connect HubSpot" in form.text
    assert '<input type="hidden" name="dataSource" value="HubSpot">' in form.text
    assert 'value="HubSpot1"' in form.text, "the default name comes from the picked source"
    saved = requests.post(
        url.split("?")[0],
        data={"token": token_of(url), "dataSource": "HubSpot", "name": "", "api_key": "k", "action": "save"},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert saved.status_code == 303
    (connection,) = cdata.emulator.connections(cdata.account_id)
    assert (connection["dataSource"], connection["name"]) == ("HubSpot", "HubSpot1")


def test_the_picker_refuses_an_unknown_source_and_a_save_without_one(cdata: CData) -> None:
    url = cdata.connect_url(REDIRECT, dataSource=None)
    unknown = requests.get(url, params={"driver": "NoSuchThing"}, timeout=TIMEOUT)
    assert unknown.status_code == 400
    assert "NoSuchThing" in unknown.text
    unpicked = requests.post(
        url.split("?")[0],
        data={"token": token_of(url), "action": "save"},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert unpicked.status_code == 400
    assert "Pick a data source" in unpicked.text
    assert cdata.emulator.connections(cdata.account_id) == []


def test_a_name_without_a_data_source_is_ignored_as_cdata_says(cdata: CData) -> None:
    url = cdata.connect_url(REDIRECT, dataSource=None, name="Wanted", editableName=False)
    params = complete_flow(url, data_source="Stripe", name=None)
    assert params["cdata_connection_name"] == "Stripe1"


def test_editable_name_false_locks_the_field_and_the_server_keeps_the_name(cdata: CData) -> None:
    url = cdata.connect_url(REDIRECT, name="Locked Name", editableName=False)
    page = requests.get(url, timeout=TIMEOUT)
    assert 'value="Locked Name" maxlength="100" readonly>' in page.text
    # A customer (or a hand-made post) that sends another name still gets the locked one.
    params = complete_flow(url, name="Something Else")
    assert params["cdata_connection_name"] == "Locked Name"
    (connection,) = cdata.emulator.connections(cdata.account_id)
    assert connection["name"] == "Locked Name"


def test_editable_name_default_lets_the_customer_rename(cdata: CData) -> None:
    url = cdata.connect_url(REDIRECT, name="Suggested")
    assert "readonly" not in requests.get(url, timeout=TIMEOUT).text
    assert complete_flow(url, name="Mine")["cdata_connection_name"] == "Mine"


def test_edit_with_editable_name_false_enforces_the_name(cdata_hook_env: CDataHook, cdata: CData) -> None:
    connection = cdata.emulator.add_connection(cdata.account_id, name="Old")
    url = cdata_hook_env.edit_connection(connection["id"], REDIRECT, name="Fixed", editable_name=False)
    assert complete_flow(url, name="Customer's")["cdata_connection_name"] == "Fixed"
    assert cdata.emulator.connection(connection["id"])["name"] == "Fixed"  # type: ignore[index]


@pytest.mark.parametrize("value", ["false", 0, None])
def test_the_emulator_refuses_editable_name_that_is_not_a_boolean(cdata: CData, value: object) -> None:
    answer = requests.post(
        f"{cdata.base_url}/poweredby/connection/create",
        json={"redirectURL": REDIRECT, "dataSource": "Salesforce", "editableName": value},
        headers=cdata.headers(),
        timeout=TIMEOUT,
    )
    if value is None:  # nullable in effect: the default (true)
        assert answer.status_code == 200
    else:
        assert answer.status_code == 400
        assert "editableName" in answer.json()["error"]["message"]


def test_the_hook_sends_editable_name_as_a_json_boolean_and_refuses_other_values(
    cdata_hook_env: CDataHook, cdata: CData
) -> None:
    cdata_hook_env.create_connection("Salesforce", REDIRECT, name="N", editable_name="no")  # type: ignore[arg-type]
    assert cdata.emulator.requests("create")[-1].body["editableName"] is False
    with pytest.raises(CDataValidationError, match="editable_name") as caught:
        cdata_hook_env.create_connection("Salesforce", REDIRECT, editable_name="maybe")  # type: ignore[arg-type]
    assert caught.value.field == "editable_name"
    with pytest.raises(CDataValidationError, match="editable_name"):
        cdata_hook_env.edit_connection(
            "123e4567-e89b-12d3-a456-426614174000",
            REDIRECT,
            editable_name=2,  # type: ignore[arg-type]
        )
    with pytest.raises(CDataValidationError, match="redirect_url"):
        cdata_hook_env.create_connection()
    assert len(cdata.emulator.requests("create")) == 1, "nothing sent for bad input"
    assert cdata.emulator.requests("edit") == []


def test_a_duplicate_external_id_is_a_409_from_the_hook(cdata_hook_env: CDataHook, cdata: CData) -> None:
    cdata.emulator.add_connection(cdata.account_id, external_id="crm-7")
    with pytest.raises(CDataAPIError) as caught:
        cdata_hook_env.create_connection(redirect_url=REDIRECT, external_id="crm-7")
    assert caught.value.status_code == 409
    assert "crm-7" in caught.value.message
    other = cdata.emulator.add_account(cdata.parent_id)["id"]
    assert cdata_hook_env.create_connection("Salesforce", REDIRECT, external_id="crm-7", account_id=other)


def test_a_conditional_connection_is_not_ready_by_default(cdata_hook_env: CDataHook, cdata: CData) -> None:
    connection = cdata.emulator.add_connection(cdata.account_id, external_id="c-1")
    cdata.emulator.set_status(connection["id"], "Conditional")
    (listed,) = cdata_hook_env.list_connections()
    assert listed["status"] == "Conditional"
    assert not ConnectionCriteria.build(external_id="c-1").matches(listed)
    assert ConnectionCriteria.build(external_id="c-1", statuses=["Conditional"]).matches(listed)
    assert ConnectionCriteria.build(statuses=["Authenticated", "Conditional"]).matches(listed)


def test_an_unknown_status_is_kept_not_refused(cdata_hook_env: CDataHook, cdata: CData) -> None:
    connection = cdata.emulator.add_connection(cdata.account_id)
    cdata.emulator.set_status(connection["id"], "PendingReview")
    (listed,) = cdata_hook_env.list_connections()
    assert listed["status"] == "PendingReview"
    assert ConnectionCriteria.build(statuses=None).matches(listed)


def test_the_admin_route_sets_a_status(cdata: CData) -> None:
    connection = cdata.emulator.add_connection(cdata.account_id)
    root = cdata.emulator.root_url
    answer = requests.post(
        f"{root}/_emulator/connections/{connection['id']}/status",
        json={"status": "Conditional"},
        timeout=TIMEOUT,
    )
    assert answer.status_code == 200
    assert cdata.emulator.connection(connection["id"])["status"] == "Conditional"  # type: ignore[index]
    bad = requests.post(
        f"{root}/_emulator/connections/{connection['id']}/status", json={"status": None}, timeout=TIMEOUT
    )
    assert bad.status_code == 400
    assert "status" in bad.json()["error"]["message"]
