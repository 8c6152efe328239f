"""What CData's OpenAPI description adds to the connect-link operators, run by Airflow (``dag.test()``)
against the emulator: no data source (the customer picks on CData's page), ``editable_name`` and, on
Edit, ``connection_name``. Templated values arrive as text ("None", "False"), as in a real DAG."""

from __future__ import annotations

import pytest

from airflow_provider_cdata.emulator import complete_flow
from airflow_provider_cdata.exceptions import CDataValidationError
from tests.conftest import CData
from tests.dag_runner import run_dag

REDIRECT = "https://app.example.com/edited"


def test_without_a_data_source_the_customer_picks_and_no_list_is_asked(airflow_conn: CData) -> None:
    result = run_dag("cdata_test_create", {"data_source": None, "customer": "acme"})
    assert result.state == "success"
    (call,) = airflow_conn.emulator.requests("create")
    assert call.body == {"redirectURL": "https://app.example.com/acme/done"}, "no dataSource sent"
    assert airflow_conn.emulator.requests("sources") == [], "nothing to check: no List Data Sources"
    assert 'id="picker"' in complete_page(result.xcom("create"))
    params = complete_flow(result.xcom("create"), data_source="MailChimp")
    assert params["cdata_connection_status"] == "success"
    (connection,) = airflow_conn.emulator.connections(airflow_conn.account_id)
    assert connection["dataSource"] == "MailChimp", "the customer's pick"


def test_editable_name_false_locks_the_name_the_operator_gave(airflow_conn: CData) -> None:
    result = run_dag("cdata_test_create", {"name": "Acme CRM", "editable_name": False})
    assert result.state == "success"
    (call,) = airflow_conn.emulator.requests("create")
    assert call.body["editableName"] is False
    assert call.body["name"] == "Acme CRM"
    assert complete_flow(result.xcom("create"), name="Renamed")["cdata_connection_name"] == "Acme CRM"


def test_editable_name_left_unset_is_not_sent(airflow_conn: CData) -> None:
    assert run_dag("cdata_test_create", {"name": "Acme CRM"}).state == "success"
    (call,) = airflow_conn.emulator.requests("create")
    assert "editableName" not in call.body


@pytest.mark.parametrize("dag_id", ["cdata_test_create", "cdata_test_edit"])
def test_an_editable_name_that_is_not_a_bool_fails_and_nothing_is_sent(
    airflow_conn: CData, dag_id: str
) -> None:
    connection = airflow_conn.emulator.add_connection(airflow_conn.account_id)
    conf = {"editable_name": "maybe", "connection_id": connection["id"]}
    assert (
        run_dag(dag_id, conf if dag_id == "cdata_test_edit" else {"editable_name": "maybe"}).state == "failed"
    )
    assert airflow_conn.emulator.counters.count() == 0


def test_edit_sends_the_name_and_locks_it(airflow_conn: CData) -> None:
    connection = airflow_conn.emulator.add_connection(airflow_conn.account_id, name="Old")
    result = run_dag(
        "cdata_test_edit", {"connection_id": connection["id"], "name": "Fixed", "editable_name": "false"}
    )
    assert result.state == "success"
    (call,) = airflow_conn.emulator.requests("edit")
    assert call.body == {"redirectURL": REDIRECT, "name": "Fixed", "editableName": False}
    assert complete_flow(result.xcom("edit"), name="Customer's")["cdata_connection_name"] == "Fixed"
    assert airflow_conn.emulator.connection(connection["id"])["name"] == "Fixed"  # type: ignore[index]


def test_edit_without_a_name_sends_only_the_redirect(airflow_conn: CData) -> None:
    connection = airflow_conn.emulator.add_connection(airflow_conn.account_id)
    assert run_dag("cdata_test_edit", {"connection_id": connection["id"]}).state == "success"
    (call,) = airflow_conn.emulator.requests("edit")
    assert call.body == {"redirectURL": REDIRECT}


def test_a_bad_connection_name_on_edit_names_the_operators_argument(airflow_conn: CData) -> None:
    from airflow_provider_cdata.operators import EditConnectionOperator

    connection = airflow_conn.emulator.add_connection(airflow_conn.account_id)
    operator = EditConnectionOperator(
        task_id="edit", connection_id=connection["id"], redirect_url=REDIRECT, connection_name="x" * 10_000
    )
    with pytest.raises(CDataValidationError) as caught:
        operator.execute({})
    assert caught.value.field == "connection_name"
    assert airflow_conn.emulator.counters.count() == 0


def complete_page(url: str) -> str:
    import requests

    return requests.get(url, timeout=10).text
