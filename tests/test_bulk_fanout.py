"""The bulk operators' async fan-out (issue 13), run by Airflow (dag.test()) against the emulator over
HTTP: at most ``max_concurrency`` calls in flight at the emulator and no more TCP connections than
that, one failure leaving the others done, and the ``max_concurrency`` check of the delete operators."""

from __future__ import annotations

import pytest

from airflow_provider_cdata.exceptions import CDataValidationError
from airflow_provider_cdata.operators import (
    MAX_CONCURRENCY,
    DeleteAccountOperator,
    DeleteConnectionOperator,
)
from tests.conftest import CData
from tests.dag_runner import run_dag


def _connections(cdata: CData, count: int, account: str | None = None) -> list[str]:
    owner = account or cdata.account_id
    return [cdata.emulator.add_connection(owner, name=f"c{i}")["id"] for i in range(count)]


def test_clear_metadata_opens_at_most_max_concurrency_connections(airflow_conn: CData) -> None:
    # cdata_test_clear runs max_concurrency=3: the listing is made on the same async session as the
    # clears, so it opens no connection of its own.
    ids = _connections(airflow_conn, 12)
    airflow_conn.emulator.inject("latency", route="clear_metadata", seconds=0.1)
    result = run_dag("cdata_test_clear", {})
    assert result.state == "success"
    assert result.xcom("clear") == ids, "cleared ids in the listed order, whatever the completion order"
    assert airflow_conn.emulator.counters.count("list", 200) == 1
    assert airflow_conn.emulator.counters.max_in_flight["clear_metadata"] == 3
    assert airflow_conn.emulator.counters.connections_accepted <= 3


def test_delete_connections_fan_out_within_max_concurrency(airflow_conn: CData) -> None:
    ids = _connections(airflow_conn, 9)
    airflow_conn.emulator.inject("latency", route="delete", seconds=0.15)
    result = run_dag("cdata_test_delete_fanned_out", {"ids": ids})
    assert result.state == "success"
    assert result.xcom("delete") == ids
    assert airflow_conn.emulator.connections() == []
    assert airflow_conn.emulator.counters.max_in_flight["delete"] == 3, "in parallel, never beyond 3"
    assert airflow_conn.emulator.counters.connections_accepted <= 3


def test_one_failed_delete_does_not_stop_the_others_in_flight(airflow_conn: CData) -> None:
    ids = _connections(airflow_conn, 6)
    airflow_conn.emulator.inject("latency", route="delete", seconds=0.05)
    airflow_conn.emulator.inject("status", route="delete", status=400, times=1)  # not retried
    result = run_dag("cdata_test_delete_fanned_out", {"ids": ids})
    assert result.state == "failed"
    assert airflow_conn.emulator.counters.count("delete") == 6, "every delete was tried"
    (left,) = [c["id"] for c in airflow_conn.emulator.connections()]
    assert result.xcom("delete", key="deleted") == [i for i in ids if i != left]


def test_delete_accounts_fan_out_connections_and_accounts_under_one_bound(airflow_conn: CData) -> None:
    accounts = [airflow_conn.emulator.add_account(airflow_conn.parent_id)["id"] for _ in range(3)]
    connections = [c for account in accounts for c in _connections(airflow_conn, 3, account)]
    airflow_conn.emulator.inject("latency", route="delete", seconds=0.15)
    airflow_conn.emulator.inject("latency", route="account_delete", seconds=0.15)
    result = run_dag("cdata_test_delete_accounts_fanned_out", {"ids": accounts})
    assert result.state == "success"
    assert result.xcom("delete") == accounts
    assert sorted(result.xcom("delete", key="deleted_connections")) == sorted(connections)
    counters = airflow_conn.emulator.counters
    assert counters.max_in_flight["delete"] == 3, "connections of several accounts at once, never beyond 3"
    assert counters.max_in_flight["account_delete"] <= 3
    # The accounts' checks (get, list) run before on the sync session: one connection of its own.
    assert counters.connections_accepted <= 3 + 1


def test_one_failed_account_does_not_stop_the_other_accounts(airflow_conn: CData) -> None:
    accounts = [airflow_conn.emulator.add_account(airflow_conn.parent_id)["id"] for _ in range(3)]
    airflow_conn.emulator.inject("status", route="account_delete", status=400, times=1)
    result = run_dag("cdata_test_delete_accounts_fanned_out", {"ids": accounts})
    assert result.state == "failed"
    assert airflow_conn.emulator.counters.count("account_delete") == 3
    remaining = {a["id"] for a in airflow_conn.emulator.store.list_accounts(airflow_conn.parent_id)}
    (left,) = remaining & set(accounts)
    assert result.xcom("delete", key="deleted") == [a for a in accounts if a != left]


@pytest.mark.parametrize("operator", [DeleteConnectionOperator, DeleteAccountOperator])
@pytest.mark.parametrize("bad", [0, MAX_CONCURRENCY + 1, True, "4"])
def test_delete_operators_refuse_a_bad_max_concurrency(operator: type, bad: object) -> None:
    ids: dict[str, list[str]] = (
        {"connection_ids": []} if operator is DeleteConnectionOperator else {"account_ids": []}
    )
    with pytest.raises(CDataValidationError) as raised:
        operator(task_id="delete", max_concurrency=bad, **ids)
    assert raised.value.field == "max_concurrency"
