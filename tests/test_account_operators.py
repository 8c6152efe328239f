"""The child-account operators and the data-source check, run by Airflow (dag.test()) against the
emulator over HTTP: get-or-create under a lost answer and under two runs at once, delete-account's
refusal and delete_connections=True, and an unknown data source with nothing minted."""

from __future__ import annotations

import json
import threading
from typing import Any, cast

import pytest

from airflow_provider_cdata.exceptions import CDataAPIError, CDataValidationError
from tests.conftest import CData, cdata_connection
from tests.dag_runner import run_dag

UNKNOWN_ID = "0b5f7d5c-3e1a-4c55-9a66-2f3b1e7c9d10"


def _accounts_with(cdata: CData, external_id: str) -> list[dict[str, Any]]:
    return [a for a in cdata.emulator.store.list_accounts(cdata.parent_id) if a["externalId"] == external_id]


def _statuses(cdata: CData, route: str) -> list[int]:
    return [record.status for record in cdata.emulator.requests(route)]


@pytest.fixture
def task_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    """Operators executed directly, as Airflow's task runner calls execute()."""
    from airflow.sdk.bases.operator import ExecutorSafeguard

    monkeypatch.setattr(ExecutorSafeguard, "test_mode", True)


# -- CreateAccountOperator: get or create -------------------------------------------------------------
def test_create_account_creates_the_tenants_account_when_there_is_none(airflow_conn: CData) -> None:
    result = run_dag("cdata_test_create_account", {"external_id": "tenant-7", "account_name": "Tenant 7"})

    assert result.state == "success"
    account = result.xcom("account")
    (stored,) = _accounts_with(airflow_conn, "tenant-7")
    assert account == {
        "id": stored["id"],
        "externalId": "tenant-7",
        "accountName": "Tenant 7",
        "created": stored["created"],
    }
    assert _statuses(airflow_conn, "account_get") == [404]
    assert _statuses(airflow_conn, "account_create") == [200]
    assert airflow_conn.emulator.requests("account_create")[0].body == {
        "externalId": "tenant-7",
        "accountName": "Tenant 7",
    }
    assert result.rendered("account")["external_id"] == "tenant-7"


def test_create_account_returns_an_existing_account_and_creates_nothing(airflow_conn: CData) -> None:
    existing = airflow_conn.emulator.add_account(
        airflow_conn.parent_id, external_id="tenant-8", account_name="Eight"
    )
    result = run_dag("cdata_test_create_account", {"external_id": "tenant-8", "account_name": "Other"})

    assert result.state == "success"
    assert result.xcom("account")["id"] == existing["id"]
    assert result.xcom("account")["accountName"] == "Eight", "an existing account keeps its name"
    assert airflow_conn.emulator.counters.count("account_create") == 0


def test_a_lost_create_answer_retried_by_the_hook_ends_with_one_account(airflow_conn: CData) -> None:
    # CData creates the account, then the answer is cut short: the hook retries, CData answers 409.
    airflow_conn.emulator.inject("truncated", route="account_create", times=1)

    result = run_dag("cdata_test_create_account", {"external_id": "tenant-9"})

    assert result.state == "success"
    (stored,) = _accounts_with(airflow_conn, "tenant-9")
    assert result.xcom("account")["id"] == stored["id"]
    assert _statuses(airflow_conn, "account_create") == [200, 409]
    assert _statuses(airflow_conn, "account_get") == [404, 200], "the 409 was looked up"


def test_a_lost_create_answer_then_a_new_try_of_the_task_ends_with_one_account(
    airflow_conn: CData, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_cdata.hooks import CDataHook

    # The first try: its only attempt creates the account and loses the answer, and the task fails.
    once = cdata_connection(airflow_conn, max_retries=0)
    monkeypatch.setenv("AIRFLOW_CONN_CDATA_ONCE", json.dumps(once))
    airflow_conn.emulator.inject("truncated", route="account_create", times=1)
    with pytest.raises(CDataAPIError):
        CDataHook(cdata_conn_id="cdata_once").create_account(external_id="tenant-10")
    assert len(_accounts_with(airflow_conn, "tenant-10")) == 1, "CData made it; the answer was lost"

    retried = run_dag("cdata_test_create_account", {"external_id": "tenant-10"})

    assert retried.state == "success"
    (stored,) = _accounts_with(airflow_conn, "tenant-10")
    assert retried.xcom("account")["id"] == stored["id"]
    assert _statuses(airflow_conn, "account_create") == [200], "the new try found it: no second create"


def test_two_runs_at_once_end_with_one_account(airflow_conn: CData, task_mode: None) -> None:
    from airflow_provider_cdata.operators import CreateAccountOperator

    # Each create waits 3 s before CData makes the account: the other run's look-up, sent meanwhile,
    # finds nothing, so both create; one wins, the other's 409 is looked up. (0.5 s was not enough on
    # a loaded machine: a run's key load and look-up came after the other's create had answered.)
    airflow_conn.emulator.inject("latency", route="account_create", seconds=3.0, times=2)
    start = threading.Barrier(2)
    results: list[dict[str, Any]] = []

    def one_run(index: int) -> None:
        task = CreateAccountOperator(task_id=f"run{index}", external_id="tenant-11", account_name="Eleven")
        start.wait()
        results.append(task.execute(cast(Any, {})))

    threads = [threading.Thread(target=one_run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    (stored,) = _accounts_with(airflow_conn, "tenant-11")
    assert [r["id"] for r in results] == [stored["id"], stored["id"]]
    assert sorted(_statuses(airflow_conn, "account_create")) == [200, 409]


# -- List Accounts, List Data Sources ------------------------------------------------------------------
def test_list_accounts_returns_every_child_account_in_one_shape(airflow_conn: CData) -> None:
    other = airflow_conn.emulator.add_account(airflow_conn.parent_id, external_id="t2", account_name="Two")
    result = run_dag("cdata_test_list_accounts")
    assert result.state == "success"
    accounts = result.xcom("accounts")
    assert {a["id"] for a in accounts} == {airflow_conn.account_id, other["id"]}
    assert all(set(a) == {"id", "externalId", "accountName", "created"} for a in accounts)
    claims = airflow_conn.emulator.requests("account_list")[0].claims
    assert claims is not None
    assert "sub" not in claims, "a parent-level call"


def test_list_data_sources_returns_the_names(airflow_conn: CData) -> None:
    from airflow_provider_cdata.emulator.state import DATA_SOURCES

    result = run_dag("cdata_test_list_data_sources")
    assert result.state == "success"
    assert result.xcom("sources") == list(DATA_SOURCES)


# -- DeleteAccountOperator -------------------------------------------------------------------------------
def _account_with_connections(cdata: CData, count: int, external_id: str) -> tuple[str, list[str]]:
    account = cdata.emulator.add_account(cdata.parent_id, external_id=external_id)["id"]
    return account, [cdata.emulator.add_connection(account)["id"] for _ in range(count)]


def test_delete_account_refuses_an_account_with_connections_and_deletes_nothing(
    airflow_conn: CData, capfd: pytest.CaptureFixture[str]
) -> None:
    empty, _ = _account_with_connections(airflow_conn, 0, "leaving-1")
    busy, connections = _account_with_connections(airflow_conn, 2, "leaving-2")

    result = run_dag("cdata_test_delete_account", {"ids": [empty, busy]})

    assert result.state == "failed"
    assert airflow_conn.emulator.counters.count("account_delete") == 0, "not even the empty one"
    assert airflow_conn.emulator.counters.count("delete") == 0
    assert {c["id"] for c in airflow_conn.emulator.connections(busy)} == set(connections)
    out = capfd.readouterr()
    assert f"still have connections: {busy} (2 connections)" in out.out + out.err


def test_delete_account_with_delete_connections_deletes_them_first(airflow_conn: CData) -> None:
    account, connections = _account_with_connections(airflow_conn, 3, "leaving-3")
    result = run_dag("cdata_test_delete_account", {"ids": [account], "delete_connections": True})

    assert result.state == "success"
    assert result.xcom("delete") == [account]
    assert sorted(result.xcom("delete", key="deleted_connections")) == sorted(connections)
    routes = [r.route for r in airflow_conn.emulator.requests() if r.route in ("delete", "account_delete")]
    assert routes == ["delete", "delete", "delete", "account_delete"], "connections first, then the account"
    assert airflow_conn.emulator.store.find_account(airflow_conn.parent_id, account) is None


def test_delete_account_collects_failures_and_keeps_an_account_whose_connections_stayed(
    airflow_conn: CData,
) -> None:
    first, first_connections = _account_with_connections(airflow_conn, 1, "leaving-4")
    second, _ = _account_with_connections(airflow_conn, 0, "leaving-5")
    airflow_conn.emulator.inject("status", status=403, route="delete", times=1)

    result = run_dag("cdata_test_delete_account", {"ids": [first, second], "delete_connections": True})

    assert result.state == "failed"
    assert result.xcom("delete", key="deleted") == [second], "the second was still deleted"
    assert result.xcom("delete", key="deleted_connections") == []
    assert airflow_conn.emulator.store.find_account(airflow_conn.parent_id, first) is not None
    assert [c["id"] for c in airflow_conn.emulator.connections(first)] == first_connections


def test_delete_account_dry_run_and_max_deletions_delete_nothing(airflow_conn: CData) -> None:
    accounts = [_account_with_connections(airflow_conn, 1, f"leaving-{i}")[0] for i in (6, 7)]
    dry = run_dag("cdata_test_delete_account", {"ids": accounts, "dry_run": True})
    capped = run_dag(
        "cdata_test_delete_account", {"ids": accounts, "delete_connections": True, "max_deletions": 1}
    )

    assert (dry.state, capped.state) == ("success", "failed")
    assert dry.xcom("delete") == []
    assert airflow_conn.emulator.counters.count("account_delete") == 0
    assert airflow_conn.emulator.counters.count("delete") == 0


def test_delete_account_counts_an_account_already_gone_as_deleted(airflow_conn: CData) -> None:
    gone, _ = _account_with_connections(airflow_conn, 0, "leaving-8")
    airflow_conn.emulator.store.delete_account(airflow_conn.parent_id, gone)
    result = run_dag("cdata_test_delete_account", {"ids": [gone]})
    assert result.state == "success"
    assert result.xcom("delete") == [gone]
    assert airflow_conn.emulator.counters.count("account_delete") == 0


# -- CreateConnectionOperator checks the data source -----------------------------------------------------
def test_an_unknown_data_source_fails_naming_the_closest_and_mints_nothing(
    airflow_conn: CData, task_mode: None
) -> None:
    from airflow_provider_cdata.operators import CreateConnectionOperator

    task = CreateConnectionOperator(
        task_id="create", data_source="Salesfroce", redirect_url="https://app.example.com/done"
    )
    with pytest.raises(CDataValidationError) as failure:
        task.execute(cast(Any, {}))

    assert failure.value.field == "data_source"
    assert "'Salesfroce' is not a data source CData offers" in str(failure.value)
    assert "the closest it offers: Salesforce" in str(failure.value)
    assert airflow_conn.emulator.counters.count("create") == 0, "no connect link was minted"
    assert airflow_conn.emulator.counters.count("sources") == 1


def test_the_data_source_is_matched_case_insensitively_and_asked_once_per_hook(
    airflow_conn: CData, task_mode: None
) -> None:
    from airflow_provider_cdata.operators import CreateConnectionOperator

    task = CreateConnectionOperator(
        task_id="create", data_source="salesFORCE", redirect_url="https://app.example.com/done"
    )
    task.execute(cast(Any, {}))
    task.execute(cast(Any, {}))

    assert airflow_conn.emulator.counters.count("sources") == 1, "cached for the hook's life"
    bodies = [r.body for r in airflow_conn.emulator.requests("create")]
    assert [b["dataSource"] for b in bodies] == ["Salesforce"] * 2, "CData's own spelling"


def test_check_data_source_false_asks_nothing_first(airflow_conn: CData) -> None:
    result = run_dag("cdata_test_create_unchecked", {"data_source": "NotOffered"})
    assert result.state == "failed"  # the emulator refuses the name itself
    assert airflow_conn.emulator.counters.count("sources") == 0
    assert airflow_conn.emulator.requests("create")[0].body["dataSource"] == "NotOffered"
