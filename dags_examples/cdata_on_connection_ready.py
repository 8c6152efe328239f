"""
### When a customer's CData connection is ready: refresh it (event-driven)

Runs **because a connection became ready**, not on a clock and with no sensor waiting: the DAG is
scheduled on the asset `cdata://connections/ready`, whose `AssetWatcher` runs a
`ConnectionEventTrigger` in the triggerer. That trigger polls List Connections of every child account
(one shared call per account per interval) and emits an asset event each time a connection appears or
changes and is `Authenticated`: a customer finished the connect page, or re-authenticated.

Each run reads the connection(s) from its triggering asset events, clears their metadata cache (so
the first query sees the customer's tables) and reports them (XCom `return_value`: one entry per
connection, `{"connection_id", "account_id", "change", "data_source"}`). It is idempotent: a
connection delivered twice (possible after a triggerer restart, at most one poll interval of events;
see the README "Restarts and the asset state store") is only cleared twice. Several events queued
while a run is active arrive in one run; each connection is handled once.

Run by hand (no asset event), it takes the connection from the run's conf:
`{"connection_id": "<uuid>", "account_id": "<uuid>"}`.

To use it: set up `cdata_default` (see the README), make sure a triggerer runs, and unpause the DAG.
What exists when the watcher starts is its baseline, not an event.
Poll interval: 60 s, or `CDATA_WATCHER_POLL_SECONDS` in the environment of the DAG processor (the
end-to-end tests use 1 s); changing it makes a new trigger, which starts from a new baseline.
Prefer `cdata_customer_onboarding` (the sensor) when one run must follow one customer from link to
ready; prefer this one when any connection of any customer, made by any path, should trigger work.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from airflow.sdk import DAG, Asset, AssetWatcher, task

from airflow_provider_cdata.triggers import ConnectionEventTrigger

POLL_SECONDS = float(os.environ.get("CDATA_WATCHER_POLL_SECONDS", "60"))
CONNECTIONS_READY = Asset(
    name="cdata_connections_ready",
    uri="cdata://connections/ready",
    watchers=[
        AssetWatcher(
            name="cdata_connection_watcher",
            trigger=ConnectionEventTrigger(all_accounts=True, poll_interval=POLL_SECONDS),
        )
    ],
)


def events_of(events: Any, asset: Asset) -> list[Any]:
    """The triggering events of ``asset``, found by URI: Airflow 3.1 cannot hash an Asset that has
    watchers, so ``events.get(asset)`` fails there (TypeError: unhashable type: 'dict')."""
    for key in events:
        if getattr(key, "uri", None) == asset.uri:
            return list(events[key])
    return []


def ready_connections(context: dict[str, Any]) -> list[dict[str, Any]]:
    """The connections this run is for: from its triggering asset events, else from its conf."""
    wanted: dict[str, dict[str, Any]] = {}
    events = context.get("triggering_asset_events") or {}
    for event in events_of(events, CONNECTIONS_READY):
        payload = (event.extra or {}).get("payload") or {}
        connection = payload.get("connection") or {}
        if connection.get("id"):
            wanted[connection["id"]] = {
                "connection_id": connection["id"],
                "account_id": payload.get("account_id"),
                "change": payload.get("change"),
                "data_source": connection.get("dataSource"),
            }
    conf = context["dag_run"].conf or {}
    if not wanted and conf.get("connection_id"):
        wanted[conf["connection_id"]] = {
            "connection_id": conf["connection_id"],
            "account_id": conf.get("account_id"),
            "change": "manual",
            "data_source": None,
        }
    return list(wanted.values())


with DAG(
    dag_id="cdata_on_connection_ready",
    description="Clear the metadata cache of each CData connection that became ready (asset watcher)",
    schedule=[CONNECTIONS_READY],
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["cdata", "example"],
    doc_md=__doc__,
) as dag:

    @task(inlets=[CONNECTIONS_READY])
    def refresh_ready_connections(**context: Any) -> list[dict[str, Any]]:
        """Clear each ready connection's metadata cache and report it."""
        # Imported here, when the task runs: parsing never needs the HTTP libraries.
        from airflow_provider_cdata.hooks import CDataHook

        ready = ready_connections(context)
        if not ready:
            raise ValueError("No connection to refresh: no triggering asset event and no conf connection_id")
        hook = CDataHook()
        for item in ready:
            hook.clear_metadata(item["connection_id"], account_id=item["account_id"])
            context["task"].log.info(
                "Connection %s (%s) of account %s is ready: metadata cache cleared",
                item["connection_id"],
                item["change"],
                item["account_id"],
            )
        return ready

    refresh_ready_connections()
