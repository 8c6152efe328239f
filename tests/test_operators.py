"""The five operators, each run in a DAG by Airflow (dag.test()) against the emulator over HTTP."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from airflow_provider_cdata.emulator import complete_flow
from tests.conftest import CData
from tests.dag_runner import run_dag

UNKNOWN_ID = "0b5f7d5c-3e1a-4c55-9a66-2f3b1e7c9d10"


def test_create_connection_operator_returns_the_connect_url(airflow_conn: CData) -> None:
    result = run_dag(
        "cdata_test_create",
        {"data_source": "Salesforce", "name": "Acme CRM", "external_id": "acme-1", "customer": "acme"},
    )
    assert result.state == "success"
    url = result.xcom("create")
    query = parse_qs(urlsplit(url).query)
    assert query["driver"] == ["Salesforce"]
    assert query["redirectUrl"] == ["https://app.example.com/acme/done"]
    (call,) = airflow_conn.emulator.requests("create")
    assert call.body == {
        "dataSource": "Salesforce",
        "redirectURL": "https://app.example.com/acme/done",
        "name": "Acme CRM",
        "externalId": "acme-1",
    }
    assert call.claims is not None
    assert call.claims["sub"] == airflow_conn.account_id
    rendered = result.rendered("create")
    assert rendered["redirect_url"] == "https://app.example.com/acme/done"
    assert rendered["external_id"] == "acme-1"
    assert complete_flow(url)["cdata_connection_status"] == "success", "the URL works for the customer"


def test_create_connection_operator_can_target_another_child_account(airflow_conn: CData) -> None:
    other = airflow_conn.emulator.add_account(airflow_conn.parent_id)["id"]
    result = run_dag("cdata_test_create", {"account_id": other})
    assert result.state == "success"
    claims = airflow_conn.emulator.requests("create")[0].claims
    assert claims is not None
    assert claims["sub"] == other


def test_edit_connection_operator_returns_the_edit_url(airflow_conn: CData) -> None:
    connection = airflow_conn.emulator.add_connection(airflow_conn.account_id, "MailChimp")
    result = run_dag("cdata_test_edit", {"connection_id": connection["id"]})
    assert result.state == "success"
    url = result.xcom("edit")
    assert urlsplit(url).path == f"/oem/user/connections/edit/{connection['id']}"
    assert [r.path for r in airflow_conn.emulator.requests("edit")] == [
        f"/api/poweredby/connection/edit/{connection['id']}"
    ]
    assert result.rendered("edit")["connection_id"] == connection["id"]


def test_edit_connection_operator_refuses_a_bad_id_before_any_request(airflow_conn: CData) -> None:
    result = run_dag("cdata_test_edit", {"connection_id": "../../account/delete/x"})
    assert result.state == "failed"
    assert airflow_conn.emulator.counters.count() == 0


def _stamp(moment: datetime) -> float:
    return moment.timestamp()


def test_list_connections_operator_filters_on_the_server_and_by_time(airflow_conn: CData) -> None:
    emu, now = airflow_conn.emulator, datetime.now(timezone.utc)
    old = emu.add_connection(
        airflow_conn.account_id, "Salesforce", name="old", last_modified=_stamp(now - timedelta(days=40))
    )
    new = emu.add_connection(
        airflow_conn.account_id, "Salesforce", name="new", last_modified=_stamp(now - timedelta(days=1))
    )
    emu.add_connection(airflow_conn.account_id, "MailChimp", name="other source")

    result = run_dag("cdata_test_list", {"data_source": "salesforce"})
    assert [c["name"] for c in result.xcom("list")] == ["old", "new"]
    assert emu.requests("list")[-1].query == {"driver": "salesforce"}

    cutoff = (now - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    older = run_dag("cdata_test_list", {"data_source": "Salesforce", "modified_before": cutoff})
    assert [c["id"] for c in older.xcom("list")] == [old["id"]]
    newer = run_dag("cdata_test_list", {"modified_after": cutoff[:19]})  # no fraction, no zone: UTC
    assert {c["name"] for c in newer.xcom("list")} == {"new", "other source"}
    assert older.rendered("list")["modified_before"] == cutoff
    assert new["lastModified"] in json.dumps(newer.xcom("list"))


def test_list_connections_operator_sends_the_external_id_filter(airflow_conn: CData) -> None:
    airflow_conn.emulator.add_connection(airflow_conn.account_id, external_id="crm-7", name="wanted")
    airflow_conn.emulator.add_connection(airflow_conn.account_id, external_id="crm-8")
    result = run_dag("cdata_test_list", {"external_id": "crm-7"})
    assert [c["name"] for c in result.xcom("list")] == ["wanted"]
    assert airflow_conn.emulator.requests("list")[-1].query == {"externalId": "crm-7"}


def test_list_connections_operator_refuses_a_bad_time_before_any_request(airflow_conn: CData) -> None:
    result = run_dag("cdata_test_list", {"modified_after": "last tuesday"})
    assert result.state == "failed"
    assert airflow_conn.emulator.counters.count() == 0


# -- Delete ----------------------------------------------------------------------------------------------
def _connections(cdata: CData, count: int) -> list[str]:
    return [cdata.emulator.add_connection(cdata.account_id, name=f"c{i}")["id"] for i in range(count)]


def test_delete_connection_operator_deletes_and_returns_the_ids(airflow_conn: CData) -> None:
    ids = _connections(airflow_conn, 3)
    result = run_dag("cdata_test_delete", {"ids": ids[:2]})
    assert result.state == "success"
    assert result.xcom("delete") == ids[:2]
    assert [c["id"] for c in airflow_conn.emulator.connections()] == [ids[2]]
    assert result.rendered("delete")["connection_ids"] == ids[:2]


def test_delete_dry_run_deletes_nothing(airflow_conn: CData) -> None:
    ids = _connections(airflow_conn, 2)
    result = run_dag("cdata_test_delete_dry_run", {"ids": ids})
    assert result.state == "success"
    assert result.xcom("delete") == []
    assert airflow_conn.emulator.counters.count("delete") == 0
    assert len(airflow_conn.emulator.connections()) == 2


def test_delete_with_more_ids_than_max_deletions_deletes_nothing_and_fails(airflow_conn: CData) -> None:
    ids = _connections(airflow_conn, 3)
    result = run_dag("cdata_test_delete_capped", {"ids": ids})
    assert result.state == "failed"
    assert airflow_conn.emulator.counters.count("delete") == 0
    assert len(airflow_conn.emulator.connections()) == 3
    within = run_dag("cdata_test_delete_capped", {"ids": ids[:2]})
    assert within.state == "success"


def test_one_failed_delete_does_not_stop_the_others(airflow_conn: CData) -> None:
    ids = _connections(airflow_conn, 3)
    airflow_conn.emulator.inject("status", status=403, route="delete", times=1)
    result = run_dag("cdata_test_delete", {"ids": ids})
    assert result.state == "failed"
    assert airflow_conn.emulator.counters.count("delete") == 3, "every delete was tried"
    assert [c["id"] for c in airflow_conn.emulator.connections()] == [ids[0]]
    assert result.xcom("delete", key="deleted") == ids[1:]


def test_delete_refuses_a_bad_id_anywhere_in_the_list_before_any_request(airflow_conn: CData) -> None:
    ids = _connections(airflow_conn, 2)
    result = run_dag("cdata_test_delete", {"ids": [ids[0], "not-a-uuid", ids[1]]})
    assert result.state == "failed"
    assert airflow_conn.emulator.counters.count() == 0
    assert len(airflow_conn.emulator.connections()) == 2


def test_list_output_feeds_delete_through_xcom(airflow_conn: CData) -> None:
    now = datetime.now(timezone.utc)
    stale = airflow_conn.emulator.add_connection(
        airflow_conn.account_id, last_modified=_stamp(now - timedelta(days=90))
    )
    fresh = airflow_conn.emulator.add_connection(airflow_conn.account_id)
    cutoff = (now - timedelta(days=30)).isoformat()
    result = run_dag("cdata_test_list_then_delete", {"modified_before": cutoff})
    assert result.state == "success"
    assert result.xcom("delete") == [stale["id"]]
    assert [c["id"] for c in airflow_conn.emulator.connections()] == [fresh["id"]]


# -- Clear metadata -------------------------------------------------------------------------------------
def test_clear_metadata_of_every_connection_of_the_account(airflow_conn: CData) -> None:
    ids = _connections(airflow_conn, 5)
    other_account = airflow_conn.emulator.add_account(airflow_conn.parent_id)["id"]
    theirs = airflow_conn.emulator.add_connection(other_account)
    result = run_dag("cdata_test_clear", {})
    assert result.state == "success"
    assert result.xcom("clear") == ids
    assert {
        c["id"]: c["metadataClears"] for c in airflow_conn.emulator.connections(airflow_conn.account_id)
    } == dict.fromkeys(ids, 1)
    assert airflow_conn.emulator.connection(theirs["id"])["metadataClears"] == 0  # type: ignore[index]
    assert airflow_conn.emulator.counters.count("clear_metadata", 200) == 5


def test_clear_metadata_of_one_data_source(airflow_conn: CData) -> None:
    sales = airflow_conn.emulator.add_connection(airflow_conn.account_id, "Salesforce")
    airflow_conn.emulator.add_connection(airflow_conn.account_id, "MailChimp")
    result = run_dag("cdata_test_clear", {"data_source": "Salesforce"})
    assert result.xcom("clear") == [sales["id"]]
    assert airflow_conn.emulator.requests("list")[0].query == {"driver": "Salesforce"}


def test_clear_metadata_never_exceeds_max_concurrency(airflow_conn: CData) -> None:
    ids = _connections(airflow_conn, 12)
    airflow_conn.emulator.inject("latency", route="clear_metadata", seconds=0.15)
    result = run_dag("cdata_test_clear", {"ids": ids})
    assert result.state == "success"
    assert sorted(result.xcom("clear")) == sorted(ids)
    assert airflow_conn.emulator.counters.max_in_flight["clear_metadata"] == 3, (
        "works in parallel, never beyond 3"
    )
    assert airflow_conn.emulator.counters.connections_accepted <= 3, (
        "the threads share keep-alive connections"
    )


def test_one_failed_clear_does_not_stop_the_others(airflow_conn: CData) -> None:
    ids = _connections(airflow_conn, 4)
    result = run_dag("cdata_test_clear", {"ids": [ids[0], UNKNOWN_ID, *ids[1:]]})
    assert result.state == "failed"
    assert airflow_conn.emulator.counters.count("clear_metadata") == 5
    assert sorted(result.xcom("clear", key="cleared")) == sorted(ids)


def test_clear_metadata_mapped_over_child_accounts(airflow_conn: CData) -> None:
    second = airflow_conn.emulator.add_account(airflow_conn.parent_id)["id"]
    first_ids, second_ids = (
        _connections(airflow_conn, 2),
        [airflow_conn.emulator.add_connection(second)["id"]],
    )
    result = run_dag("cdata_test_clear_accounts", {"accounts": [airflow_conn.account_id, second]})
    assert result.state == "success"
    assert result.xcom("clear", map_index=0) == first_ids
    assert result.xcom("clear", map_index=1) == second_ids
    subjects = sorted((r.claims or {})["sub"] for r in airflow_conn.emulator.requests("list"))
    assert subjects == sorted([airflow_conn.account_id, second])
    assert result.rendered("clear", map_index=1)["account_id"] == second


@pytest.mark.parametrize(
    ("factory", "field"),
    [
        (lambda: _clear(max_concurrency=0), "max_concurrency"),
        (lambda: _clear(max_concurrency=33), "max_concurrency"),
        (lambda: _delete(connection_id=UNKNOWN_ID, max_deletions=-1), "max_deletions"),
        (lambda: _delete(connection_id=None), "connection_id"),
    ],
)
def test_operator_arguments_are_checked_when_the_dag_is_built(factory: Any, field: str) -> None:
    from airflow_provider_cdata.exceptions import CDataValidationError

    with pytest.raises(CDataValidationError) as failure:
        factory()
    assert failure.value.field == field


def _clear(**kwargs: Any) -> Any:
    from airflow_provider_cdata.operators import ClearMetadataOperator

    return ClearMetadataOperator(task_id="t", **kwargs)


def _delete(**kwargs: Any) -> Any:
    from airflow_provider_cdata.operators import DeleteConnectionOperator

    return DeleteConnectionOperator(task_id="t", **kwargs)
