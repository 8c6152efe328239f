"""
### Clean up stale CData connections, weekly (dry run by default)

Lists the child account's connections not modified for `stale_after_days` days and deletes them.

Safe by default:
- `dry_run` defaults to **true**: the run only logs which connections it would delete. Trigger with
  `{"dry_run": false}` (or change the default) to really delete.
- `max_deletions` (default 10): when more connections than that are stale, nothing is deleted and
  the run fails, saying so: a wrong filter or a clock problem cannot wipe an account.

Params: `stale_after_days` (default 90), `dry_run`, `max_deletions`, `account_id` (empty: the
`cdata_default` connection's). `find_stale_connections` returns the stale connections (XCom);
`delete_stale_connections` returns the ids it deleted.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from airflow_provider_cdata.operators import DeleteConnectionOperator, ListConnectionsOperator

ACCOUNT_ID = "{{ params.account_id or None }}"
# dag_run.run_after is set for scheduled and manual runs alike (logical_date may be None in Airflow 3).
STALE_BEFORE = "{{ (dag_run.run_after - macros.timedelta(days=params.stale_after_days)).isoformat() }}"

with DAG(
    dag_id="cdata_stale_connection_cleanup",
    description="Delete CData connections not modified for N days (dry run by default)",
    schedule="@weekly",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["cdata", "example"],
    doc_md=__doc__,
    render_template_as_native_obj=True,
    params={
        "stale_after_days": Param(90, type="integer", minimum=1),
        "dry_run": Param(True, type="boolean"),
        "max_deletions": Param(10, type="integer", minimum=0),
        "account_id": Param(None, type=["null", "string"]),
    },
) as dag:
    stale = ListConnectionsOperator(
        task_id="find_stale_connections",
        account_id=ACCOUNT_ID,
        modified_before=STALE_BEFORE,
    )

    DeleteConnectionOperator(
        task_id="delete_stale_connections",
        account_id=ACCOUNT_ID,
        connection_ids=stale.output,
        dry_run="{{ params.dry_run }}",
        max_deletions="{{ params.max_deletions }}",
    )
