"""The harness's deferring DAG: wait (deferred, in the real triggerer) for the customer's connection."""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG

from tests.e2e.deferrable import WaitForEmulatorConnection

with DAG(
    dag_id="e2e_wait_for_connection",
    schedule=None,
    start_date=dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc),
    params={"external_id": "e2e-default"},
    tags=["e2e"],
):
    WaitForEmulatorConnection(task_id="wait_for_connection", external_id="{{ params.external_id }}")
