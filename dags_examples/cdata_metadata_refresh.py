"""
### Refresh CData metadata caches, daily

Clears the metadata cache of **every connection** of every child account, so the next query through
CData sees new tables and columns. One mapped task per child account; inside each, up to 8
connections are cleared at once, and one failure does not stop the others.

**Which child accounts**: by default every child account of the parent, as List Accounts answers
when the run starts (a customer onboarded yesterday is refreshed today; nothing to keep up to date).
The `account_ids` param narrows a run to some of them (`{"account_ids": ["<uuid>", ...]}`).

To use it: set up `cdata_default` (see the README) and unpause the DAG. `child_accounts` returns the
account ids; each mapped task returns the ids it cleared (XCom `return_value`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, Param, task

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
            description="Child account ids to refresh; empty: every child account (List Accounts)",
        )
    },
) as dag:

    @task
    def child_accounts(**context: Any) -> list[str]:
        """The child accounts to refresh: the param's, else every one List Accounts answers."""
        configured = context["params"].get("account_ids")
        if configured:
            return list(configured)
        # Imported here, when the task runs: the hook brings the HTTP libraries, which parsing never needs.
        from airflow_provider_cdata.hooks import CDataHook

        accounts = [account["id"] for account in CDataHook().list_accounts()]
        context["task"].log.info("Refreshing all %d child accounts", len(accounts))
        return accounts

    ClearMetadataOperator.partial(task_id="clear_metadata", max_concurrency=8).expand(
        account_id=child_accounts()
    )
