"""The harness's scheduled DAG: list the child account's connections with a JWT minted from cdata_default."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import jwt
import requests
from airflow.sdk import DAG, BaseHook, task
from airflow.sdk.log import mask_secret


@task
def list_connections() -> dict[str, Any]:
    connection = BaseHook.get_connection("cdata_default")
    account_id = connection.extra_dejson["account_id"]
    now = int(time.time())
    claims = {
        "tokenType": "powered-by",
        "iat": now,
        "exp": now + 300,
        "iss": connection.login,
        "sub": account_id,
    }
    token = jwt.encode(claims, connection.password or "", algorithm="RS256")
    mask_secret(token)
    answer = requests.get(
        f"{connection.host}/poweredby/connection/list",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    answer.raise_for_status()
    ids = [c["id"] for c in answer.json()["connections"]]
    print(f"Listed {len(ids)} connections of account {account_id} with token {token}")
    return {"account_id": account_id, "connection_ids": ids}


with DAG(
    dag_id="e2e_scheduled_list",
    # A past start and no catchup: once unpaused, the scheduler makes the run for the latest daily tick.
    schedule="@daily",
    start_date=dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    tags=["e2e"],
):
    list_connections()
