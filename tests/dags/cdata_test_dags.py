"""DAGs the operator and sensor tests run with dag.test(). Values come from params, so each test
also proves that templated fields were rendered (and rendered as native objects where it matters)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, task

from airflow_provider_cdata.operators import (
    ClearMetadataOperator,
    CreateAccountOperator,
    CreateConnectionOperator,
    DeleteAccountOperator,
    DeleteConnectionOperator,
    EditConnectionOperator,
    ListAccountsOperator,
    ListConnectionsOperator,
    ListDataSourcesOperator,
)
from airflow_provider_cdata.sensors import ConnectionSensor

START = datetime(2024, 1, 1)


def test_dag(dag_id: str, **kwargs: Any) -> DAG:
    return DAG(
        dag_id, schedule=None, start_date=START, catchup=False, render_template_as_native_obj=True, **kwargs
    )


with test_dag(
    "cdata_test_create",
    params={"data_source": "Salesforce", "name": None, "external_id": None, "editable_name": None},
):
    CreateConnectionOperator(
        task_id="create",
        data_source="{{ params.data_source }}",
        redirect_url="https://app.example.com/{{ dag_run.conf.get('customer', 'none') }}/done",
        connection_name="{{ params.name }}",
        external_id="{{ params.external_id }}",
        editable_name="{{ params.editable_name }}",
        account_id="{{ params.get('account_id') }}",
    )

with test_dag("cdata_test_create_account", params={"external_id": "tenant-1", "account_name": None}):
    CreateAccountOperator(
        task_id="account", external_id="{{ params.external_id }}", account_name="{{ params.account_name }}"
    )

with test_dag("cdata_test_list_accounts"):
    ListAccountsOperator(task_id="accounts")

with test_dag("cdata_test_list_data_sources"):
    ListDataSourcesOperator(task_id="sources")

with test_dag(
    "cdata_test_delete_account",
    params={"ids": [], "dry_run": False, "delete_connections": False, "max_deletions": None},
):
    DeleteAccountOperator(
        task_id="delete",
        account_ids="{{ params.ids }}",
        dry_run="{{ params.dry_run }}",
        delete_connections="{{ params.delete_connections }}",
        max_deletions="{{ params.max_deletions }}",
    )

with test_dag("cdata_test_delete_accounts_fanned_out", params={"ids": []}):
    DeleteAccountOperator(
        task_id="delete", account_ids="{{ params.ids }}", delete_connections=True, max_concurrency=3
    )

with test_dag("cdata_test_create_unchecked", params={"data_source": "Salesforce"}):
    CreateConnectionOperator(
        task_id="create",
        data_source="{{ params.data_source }}",
        redirect_url="https://app.example.com/done",
        check_data_source=False,
    )

with test_dag("cdata_test_edit", params={"connection_id": "", "name": None, "editable_name": None}):
    EditConnectionOperator(
        task_id="edit",
        connection_id="{{ params.connection_id }}",
        redirect_url="https://app.example.com/edited",
        connection_name="{{ params.name }}",
        editable_name="{{ params.editable_name }}",
    )

with test_dag(
    "cdata_test_list",
    params={"data_source": None, "external_id": None, "modified_after": None, "modified_before": None},
):
    ListConnectionsOperator(
        task_id="list",
        data_source="{{ params.data_source }}",
        external_id="{{ params.external_id }}",
        modified_after="{{ params.modified_after }}",
        modified_before="{{ params.modified_before }}",
    )

DELETE_VARIANTS: dict[str, dict[str, Any]] = {
    "cdata_test_delete": {},
    "cdata_test_delete_dry_run": {"dry_run": True},
    "cdata_test_delete_capped": {"max_deletions": 2},
    "cdata_test_delete_fanned_out": {"max_concurrency": 3},
}
for dag_id, options in DELETE_VARIANTS.items():
    with test_dag(dag_id, params={"ids": []}):
        DeleteConnectionOperator(task_id="delete", connection_ids="{{ params.ids }}", **options)

with test_dag("cdata_test_list_then_delete", params={"modified_before": None}):
    stale = ListConnectionsOperator(task_id="list", modified_before="{{ params.modified_before }}")
    DeleteConnectionOperator(task_id="delete", connection_ids=stale.output)

with test_dag("cdata_test_list_reauthenticate_delete"):
    # Between the listing and the delete, the customer re-authenticates the first listed connection
    # on CData's page (its Edit link, saved): the delete must skip it.
    listed = ListConnectionsOperator(task_id="list")

    @task
    def customer_reauthenticates(connections: Any) -> str:
        from airflow_provider_cdata.emulator import complete_flow
        from airflow_provider_cdata.hooks import CDataHook

        url = CDataHook().edit_connection(connections[0]["id"], redirect_url="https://app.example.com/back")
        complete_flow(url)
        return str(connections[0]["id"])

    reauthenticated = customer_reauthenticates(listed.output)
    delete = DeleteConnectionOperator(task_id="delete", connection_ids=listed.output)
    reauthenticated >> delete

with test_dag("cdata_test_clear", params={"ids": None, "data_source": None, "max_concurrency": 4}):
    ClearMetadataOperator(
        task_id="clear",
        connection_ids="{{ params.ids }}",
        data_source="{{ params.data_source }}",
        max_concurrency=3,
    )

with test_dag("cdata_test_clear_accounts", params={"accounts": []}):

    @task
    def accounts(**context: Any) -> list[str]:
        return list(context["params"]["accounts"])

    ClearMetadataOperator.partial(task_id="clear", max_concurrency=2).expand(account_id=accounts())

for mode in ("poke", "reschedule", "deferrable"):
    with test_dag(
        f"cdata_test_sensor_{mode}",
        params={"external_id": None, "connection_name": None, "modified_after": None, "timeout": 60},
    ):
        ConnectionSensor(
            task_id="wait",
            external_id="{{ params.external_id }}",
            connection_name="{{ params.connection_name }}",
            data_source="Salesforce",
            modified_after="{{ params.modified_after }}",
            mode="reschedule" if mode == "reschedule" else "poke",
            deferrable=mode == "deferrable",
            poke_interval=0.3,
            # A safety net, not what the tests measure: in reschedule mode each poke is a new task
            # process, and on Airflow 3.2 under the matrix's load one took 19 s to start (20 s was missed).
            timeout=120,
        )
    for soft_fail in (False, True):
        with test_dag(f"cdata_test_sensor_{mode}_timeout{'_soft' if soft_fail else ''}"):
            ConnectionSensor(
                task_id="wait",
                external_id="never-created",
                mode="reschedule" if mode == "reschedule" else "poke",
                deferrable=mode == "deferrable",
                poke_interval=0.3,
                timeout=1.5,
                soft_fail=soft_fail,
            )
