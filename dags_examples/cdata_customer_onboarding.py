"""
### Onboard a customer: their child account, a connect link, wait for their connection, refresh it

Trigger one run per customer, with params:

| param | meaning |
|---|---|
| `tenant_id` | your platform's own id of the customer: their child account's external id |
| `tenant_name` | optional; the name of the child account if this run creates it |
| `data_source` | the data source to connect, e.g. `Salesforce` (checked); `null`: the customer picks |
| `redirect_url` | where CData sends the customer's browser when they are done |
| `connection_name` | optional name, prefilled on CData's page |

What happens:
1. `child_account` gets the customer's child account by `tenant_id`, or creates it: safe to retry and
   to run twice at once (exactly one account per tenant). Its XCom is the account
   (`{"id", "externalId", "accountName", "created"}`); every later step acts as that account.
2. `create_connect_link` checks a given `data_source` against List Data Sources (an unknown name fails
   naming the closest ones CData offers, before any link is minted; with none, CData's page lets the
   customer pick, and nothing is checked), then asks CData for a connect link with
   an `external_id` unique to this run (`onboarding-<run id>`). The link is the task's XCom
   `return_value`: your product's app reads it (REST API:
   `.../taskInstances/create_connect_link/xcomEntries/return_value`) and sends the customer there.
   The link's token is a short-lived credential (180 s at CData); it is masked in the logs.
3. `hand_off_link` is where you would email or message the link; here it logs it, token masked.
4. `wait_for_connection` is a deferrable `ConnectionSensor` on that `external_id`: it holds no
   worker slot while the customer fills in CData's page (the triggerer polls), and returns the new
   connection once it is listed and `Authenticated`. Times out after `ONBOARDING_TIMEOUT`.
5. `refresh_metadata` clears the new connection's metadata cache; `report` logs and returns it.

Poll interval: 30 s, or `CDATA_ONBOARDING_POKE_SECONDS` in the environment (the demo uses 1 s).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_provider_cdata.hooks import mask_connect_url
from airflow_provider_cdata.operators import (
    ClearMetadataOperator,
    CreateAccountOperator,
    CreateConnectionOperator,
)
from airflow_provider_cdata.sensors import ConnectionSensor

POKE_SECONDS = float(os.environ.get("CDATA_ONBOARDING_POKE_SECONDS", "30"))
ONBOARDING_TIMEOUT = timedelta(hours=2)
EXTERNAL_ID = "onboarding-{{ run_id }}"
# The child account child_account returned: every later step acts as it (the JWT's sub).
ACCOUNT_ID = "{{ ti.xcom_pull(task_ids='child_account')['id'] }}"

with DAG(
    dag_id="cdata_customer_onboarding",
    description="Send a customer a CData connect link, wait for their connection, refresh it",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["cdata", "example"],
    doc_md=__doc__,
    render_template_as_native_obj=True,
    params={
        "tenant_id": Param(
            type="string", minLength=1, description="Your id of the customer (the child account's externalId)"
        ),
        "tenant_name": Param(None, type=["null", "string"], description="Name of a new child account"),
        "data_source": Param(
            "Salesforce",
            type=["null", "string"],
            minLength=1,
            description="The data source to connect; null: the customer picks one on CData's page",
        ),
        "redirect_url": Param("https://app.example.com/cdata/connected", type="string", format="uri"),
        "connection_name": Param(None, type=["null", "string"]),
    },
) as dag:
    child_account = CreateAccountOperator(
        task_id="child_account",
        external_id="{{ params.tenant_id }}",
        account_name="{{ params.tenant_name }}",
    )

    connect_link = CreateConnectionOperator(
        task_id="create_connect_link",
        account_id=ACCOUNT_ID,
        data_source="{{ params.data_source }}",
        redirect_url="{{ params.redirect_url }}",
        connection_name="{{ params.connection_name }}",
        external_id=EXTERNAL_ID,
    )

    @task
    def hand_off_link(**context: Any) -> None:
        """Send the link to the customer (email, chat, your app). Its token never reaches a log.

        The link is read from XCom here, not passed in as an argument: an argument is rendered and stored
        (the task's "Rendered Template") before this code runs, when this process's secrets masker has
        never seen the token.
        """
        connect_url = context["ti"].xcom_pull(task_ids="create_connect_link")
        mask_connect_url(connect_url)
        # Log through the task's logger, not print(): log records pass through Airflow's masker.
        context["task"].log.info("Connect link for the customer (valid for a few minutes): %s", connect_url)

    wait_for_connection = ConnectionSensor(
        task_id="wait_for_connection",
        account_id=ACCOUNT_ID,
        external_id=EXTERNAL_ID,
        deferrable=True,
        poke_interval=POKE_SECONDS,
        timeout=ONBOARDING_TIMEOUT,
    )

    refresh_metadata = ClearMetadataOperator(
        task_id="refresh_metadata",
        account_id=ACCOUNT_ID,
        connection_id="{{ ti.xcom_pull(task_ids='wait_for_connection')['id'] }}",
    )

    @task
    def report(connection: dict[str, Any], **context: Any) -> dict[str, Any]:
        context["task"].log.info(
            "Customer connected %s as %r (id %s, status %s)",
            connection["dataSource"],
            connection["name"],
            connection["id"],
            connection.get("status", "n/a"),
        )
        return connection

    child_account >> connect_link >> hand_off_link() >> wait_for_connection >> refresh_metadata
    refresh_metadata >> report(wait_for_connection.output)
