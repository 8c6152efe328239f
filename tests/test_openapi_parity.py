"""Parity with CData's OpenAPI description (tests/parity): every hook call, both directions, and proof
that a drift on either side is caught.

tests/conftest.py checks every in-process emulator of the suite as it stops; here every call the hook
makes runs, sync and async, with and without its optional fields, and the log is checked at once, so a
call that no other test happens to make is held to the description too.
"""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_cdata.emulator import Emulator, complete_flow
from airflow_provider_cdata.emulator.metrics import RequestRecord
from airflow_provider_cdata.hooks import USER_AGENT, CDataHook
from tests.conftest import CData
from tests.parity.check import problems, sent_by_hook
from tests.parity.models import ROUTE_SCHEMAS
from tests.test_hook_calls import Runner, runner_fixture

REDIRECT = "https://app.example.com/done"
run = runner_fixture()
pytestmark = pytest.mark.usefixtures("fast_retries")


def drive_every_call(hook: CDataHook, run: Runner, cdata: CData) -> None:
    """Each public call of the hook, with no optional field and with every one."""
    run(hook, "create_connection", "Salesforce", REDIRECT)
    run(hook, "create_connection", redirect_url=REDIRECT)  # the customer picks the data source
    url = run(
        hook, "create_connection", "Snowflake", REDIRECT, name="WH", external_id="wh-1", editable_name=False
    )
    assert url.startswith("http")
    connection = cdata.emulator.add_connection(cdata.account_id, "Snowflake", name="WH2", external_id="wh-2")
    run(hook, "edit_connection", connection["id"], REDIRECT)
    run(hook, "edit_connection", connection["id"], REDIRECT, name="Renamed", editable_name=True)
    run(hook, "list_connections")
    run(hook, "list_connections", data_source="snowflake", external_id="wh-2")
    run(hook, "clear_metadata", connection["id"])
    run(hook, "delete_connection", connection["id"])
    run(hook, "list_data_sources")
    bare = run(hook, "create_account")
    named = run(hook, "create_account", external_id="tenant-9", account_name="Tenant Nine")
    run(hook, "get_account", named["id"])
    run(hook, "get_account", "tenant-9")
    run(hook, "list_accounts")
    run(hook, "update_account", bare["id"], account_name="Bare")
    run(hook, "update_account", bare["id"], external_id="tenant-10", account_name="Ten")
    run(hook, "delete_account", bare["id"])


def test_every_hook_call_and_its_answer_match_the_description(
    cdata_hook_env: CDataHook, cdata: CData, run: Runner
) -> None:
    drive_every_call(cdata_hook_env, run, cdata)
    records = cdata.emulator.requests()
    assert problems(records) == []
    hook_routes = {r.route for r in records if sent_by_hook(r)}
    # Every schema'd route the hook uses was exercised (the seed's metadata route is the hook's one).
    assert hook_routes >= set(ROUTE_SCHEMAS) - {"clear_metadata_openapi"}
    bodies = [r.body for r in records if r.route == "create"]
    assert {"redirectURL": REDIRECT} in bodies, "no data source: only redirectURL is sent"
    assert {
        "dataSource": "Snowflake",
        "redirectURL": REDIRECT,
        "name": "WH",
        "externalId": "wh-1",
        "editableName": False,
    } in bodies
    edits = [r.body for r in records if r.route == "edit"]
    assert edits == [
        {"redirectURL": REDIRECT},
        {"redirectURL": REDIRECT, "name": "Renamed", "editableName": True},
    ]
    assert all(r.answer is not None for r in records if r.route in ROUTE_SCHEMAS and r.status == 200)


def record(route: str, answer: bytes | None = None, body: Any = None, **fields: Any) -> RequestRecord:
    made = RequestRecord(method="GET", path=f"/api/poweredby/{route}", route=route, status=200, **fields)
    made.body = body
    made.answer = answer
    return made


HOOK = f"{USER_AGENT} python-requests/2"
GOOD_ITEM = (
    '{"id": "880dc1a2-03c3-4288-9857-6f5c029d897c", "name": "E", "dataSource": "ExcelOnline", '
    '"lastModified": "2024-08-02T21:30:55.154Z", "externalId": null, "mcpUrl": "/mcp/connections/x", '
    '"status": "Conditional"}'
)
DRIFTS: dict[str, RequestRecord] = {
    "list item without mcpUrl": record(
        "list",
        GOOD_ITEM.replace(', "mcpUrl": "/mcp/connections/x"', "").join(['{"connections": [', "]}"]).encode(),
    ),
    "list item with an unknown field": record(
        "list",
        GOOD_ITEM.replace('"status"', '"colour": "red", "status"').join(['{"connections": [', "]}"]).encode(),
    ),
    "list item with status null": record(
        "list", GOOD_ITEM.replace('"Conditional"', "null").join(['{"connections": [', "]}"]).encode()
    ),
    "list item with an id that is no uuid": record(
        "list",
        GOOD_ITEM.replace("880dc1a2-03c3-4288-9857-6f5c029d897c", "42")
        .join(['{"connections": [', "]}"])
        .encode(),
    ),
    "redirect answer under another name": record("create", b'{"redirectUrl": "https://x"}'),
    "a body on delete": record("delete", b'{"deleted": true}'),
    "account without created": record("account_get", b'{"id": "a", "externalId": "e"}'),
    "sources as bare names": record("sources", b'{"dataSources": ["Salesforce"]}'),
    "hook sends editableName as text": record(
        "create", None, {"redirectURL": REDIRECT, "editableName": "false"}, user_agent=HOOK
    ),
    "hook sends a field the description lacks": record(
        "edit", None, {"redirectURL": REDIRECT, "dataSource": "Salesforce"}, user_agent=HOOK
    ),
    "hook sends no redirectURL": record("create", None, {"dataSource": "Salesforce"}, user_agent=HOOK),
    "hook sends an unknown query parameter": record(
        "list", None, None, query={"sort": "name"}, user_agent=HOOK
    ),
    "hook sends a body to Get Account": record("account_get", None, {"x": 1}, user_agent=HOOK),
}


@pytest.mark.parametrize("case", list(DRIFTS))
def test_a_drift_on_either_side_fails_the_check(case: str) -> None:
    (problem,) = problems([DRIFTS[case]])
    assert DRIFTS[case].route in problem


def test_the_described_example_answer_passes_the_check() -> None:
    """The description's own List Connections example (its second item): the models are not too strict."""
    assert problems([record("list", f'{{"connections": [{GOOD_ITEM}]}}'.encode())]) == []


def test_a_drifting_emulator_fails_the_suite_check(cdata: CData, monkeypatch: pytest.MonkeyPatch) -> None:
    """The conftest check sees what the live emulator answers: drop mcpUrl from its listing, and the
    emulator's log no longer passes; then clear the log so this test itself stays green."""
    import airflow_provider_cdata.emulator.app as app

    listed = app._listed
    monkeypatch.setattr(app, "_listed", lambda c: {k: v for k, v in listed(c).items() if k != "mcpUrl"})
    cdata.emulator.add_connection(cdata.account_id)
    import requests

    requests.get(f"{cdata.base_url}/poweredby/connection/list", headers=cdata.headers(), timeout=10)
    found = problems(cdata.emulator.requests())
    assert len(found) == 1
    assert "mcpUrl" in found[0]
    cdata.emulator.reset_counters()


def test_the_suite_check_runs_when_an_emulator_stops() -> None:
    """Emulator.stop is the conftest's checking stop, for emulators made outside the fixtures too."""
    from tests import conftest

    before = len(conftest.PARITY_PROBLEMS)
    with Emulator() as emu:
        emu.counters.finished(record("sources", b'{"dataSources": [{"name": "x"}]}'))
    assert len(conftest.PARITY_PROBLEMS) == before + 1
    del conftest.PARITY_PROBLEMS[before:]


def test_a_picked_data_source_round_trip_matches_the_description(
    cdata_hook_env: CDataHook, cdata: CData
) -> None:
    url = cdata_hook_env.create_connection(redirect_url=REDIRECT, external_id="pick-1")
    assert complete_flow(url, data_source="HubSpot")["cdata_connection_status"] == "success"
    (listed,) = cdata_hook_env.list_connections(external_id="pick-1")
    assert listed["dataSource"] == "HubSpot"
    assert problems(cdata.emulator.requests()) == []
