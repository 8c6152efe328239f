"""
### Refresh CData metadata caches, daily

Clears the metadata cache of **every connection** of each configured child account, so the next
query through CData sees new tables and columns. One mapped task per child account; inside each,
up to 8 connections are cleared at once, and one failure does not stop the others.

**Which child accounts**, first found wins:
1. the `account_ids` param of a manual run (`{"account_ids": ["<uuid>", ...]}`),
2. the Airflow Variable `cdata_account_ids` (a JSON list of child account ids),
3. the `account_id` extra of the `cdata_default` connection.

To use it: set up `cdata_default` (see the README), optionally the Variable, and unpause the DAG.
Each mapped task returns the ids it cleared (XCom `return_value`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, Param, Variable, task

from airflow_provider_cdata.operators import ClearMetadataOperator

with DAG(
    dag_id="cdata_metadata_refresh",
    description="Clear the metadata cache of every CData connection of each child account",
    schedule="@daily",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["cdata", "example"],
    doc_md=__doc__,
    params={
        "account_ids": Param(
            None,
            type=["null", "array"],
            items={"type": "string"},
            description="Child account ids; empty: the Variable cdata_account_ids, else the connection's",
        )
    },
) as dag:

    @task
    def child_accounts(**context: Any) -> list[str | None]:
        """The child accounts to refresh (None: the cdata_default connection's own account)."""
        configured = context["params"].get("account_ids") or Variable.get(
            "cdata_account_ids", default=None, deserialize_json=True
        )
        if not configured:
            return [None]
        if not isinstance(configured, list):
            raise ValueError(
                "account_ids / the Variable cdata_account_ids must be a JSON list of account ids"
            )
        return list(configured)

    ClearMetadataOperator.partial(task_id="clear_metadata", max_concurrency=8).expand(
        account_id=child_accounts()
    )
