"""Issue 12, part 1 under the real triggerer and scheduler: ``cdata_on_connection_ready``'s asset watcher
(``ConnectionEventTrigger``, every child account, 1 s polls) runs in the triggerer process once the DAG is
unpaused; a customer completing the connect page makes the scheduler run the DAG once for that
connection, a second change once more, and a connection that existed when the watcher started never.

Its own set of services (module scope): the onboarding module's runs must not see these asset runs.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any

import pytest

from airflow_provider_cdata.emulator import complete_flow
from tests.e2e.api import AirflowAPI
from tests.e2e.conftest import E2ECData
from tests.e2e.harness import AirflowStack, cdata_connection_env
from tests.e2e.processes import tree_pids

pytestmark = pytest.mark.e2e

DAG_ID = "cdata_on_connection_ready"
TASK_ID = "refresh_ready_connections"


@pytest.fixture(scope="module")
def airflow_env(e2e_cdata: E2ECData) -> dict[str, str]:
    connection = cdata_connection_env(
        e2e_cdata.base_url, e2e_cdata.parent_id, e2e_cdata.keys.private_pem, e2e_cdata.account_id
    )
    # A killed triggerer's triggers go to another once its heartbeat is this old (default 30 s).
    return {
        **connection,
        "CDATA_WATCHER_POLL_SECONDS": "1",
        "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "5",
    }


def watcher_polls(cdata: E2ECData) -> int:
    """List Connections calls from the triggerer (the hook's async client) of the customer's account."""
    return sum(
        1
        for record in cdata.emulator.requests("list")
        if "aiohttp" in record.user_agent and (record.claims or {}).get("sub") == cdata.account_id
    )


def wait_for_polls(cdata: E2ECData, more_than: int, timeout: float = 60.0) -> int:
    deadline = time.monotonic() + timeout
    while (polls := watcher_polls(cdata)) <= more_than:
        assert time.monotonic() < deadline, "the asset watcher never polled in the triggerer"
        time.sleep(0.2)
    return polls


def asset_runs(api: AirflowAPI) -> list[dict[str, Any]]:
    return sorted(api.dag_runs(DAG_ID, run_type="asset_triggered"), key=lambda r: r["run_after"])


def wait_for_asset_runs(api: AirflowAPI, count: int, timeout: float = 90.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while len(runs := asset_runs(api)) < count:
        assert time.monotonic() < deadline, f"{len(runs)} asset-triggered runs, not {count}"
        time.sleep(0.5)
    return [api.wait_for_run(DAG_ID, run["dag_run_id"]) for run in runs]


def test_a_ready_connection_runs_the_asset_dag_once_and_a_change_once_more(
    airflow_stack: AirflowStack, e2e_cdata: E2ECData
) -> None:
    api, emulator = airflow_stack.api, e2e_cdata.emulator
    existing = emulator.add_connection(e2e_cdata.account_id, status="Authenticated")
    api.unpause(DAG_ID)
    # The watcher's baseline (the existing connection in it), then one more poll.
    wait_for_polls(e2e_cdata, wait_for_polls(e2e_cdata, 0))

    params = complete_flow(e2e_cdata.connect_url(externalId="watched-customer"))
    [connection] = [c for c in emulator.connections() if c.get("externalId") == "watched-customer"]
    assert params.get("connectionId", connection["id"]) == connection["id"]
    [first] = wait_for_asset_runs(api, 1)
    report = api.xcom(DAG_ID, first["dag_run_id"], TASK_ID)
    assert [(r["connection_id"], r["account_id"], r["change"]) for r in report] == [
        (connection["id"], e2e_cdata.account_id, "created")
    ]

    e2e_cdata.reauthenticate(connection["id"])  # the customer saves again: lastModified moves
    runs = wait_for_asset_runs(api, 2)
    second = api.xcom(DAG_ID, runs[1]["dag_run_id"], TASK_ID)
    assert [(r["connection_id"], r["change"]) for r in second] == [(connection["id"], "changed")]

    # Several more polls: the same states fire no more, and the baseline's connection never did.
    wait_for_polls(e2e_cdata, watcher_polls(e2e_cdata) + 3)
    time.sleep(3)
    runs = asset_runs(api)
    assert len(runs) == 2, runs
    reported = {r["connection_id"] for run in runs for r in api.xcom(DAG_ID, run["dag_run_id"], TASK_ID)}
    assert existing["id"] not in reported
    cleared = next(c for c in emulator.connections() if c["id"] == connection["id"])
    assert cleared["metadataClears"] == 2


def asset_state_store_in_this_airflow() -> bool:
    """Airflow 3.3+ gives event triggers an asset state store; 3.1 and 3.2 have none (README, "Restarts
    and the asset state store")."""
    try:
        from airflow.sdk.execution_time.context import AssetStateStoreAccessors  # noqa: F401
    except ImportError:
        return False
    return True


def test_after_a_sigkill_the_new_triggerer_delivers_what_this_airflow_version_documents(
    airflow_stack: AirflowStack, e2e_cdata: E2ECData
) -> None:
    """SIGKILL: no shutdown, no chance to save anything. On Airflow 3.3 the watcher's states are in the
    asset state store, so the new triggerer delivers the connection made meanwhile, once. On 3.1 and
    3.2 (no store) the new triggerer starts from a fresh baseline, as the README says: the connection
    made meanwhile is not delivered, and its next change is, once."""
    api, emulator, processes = airflow_stack.api, e2e_cdata.emulator, airflow_stack.processes
    before = len(wait_for_asset_runs(api, 2))  # the previous test's two runs
    killed = processes.services["triggerer"]
    os.killpg(killed.pid, signal.SIGKILL)
    killed.process.wait(timeout=10)
    killed.log_file.close()
    deadline = time.monotonic() + 10
    while tree_pids(processes.marker, [killed.pid]) and time.monotonic() < deadline:
        time.sleep(0.1)

    # While no triggerer runs: a customer completes the connect page.
    complete_flow(e2e_cdata.connect_url(externalId="while-killed"))
    [made] = [c for c in emulator.connections() if c.get("externalId") == "while-killed"]
    polls = watcher_polls(e2e_cdata)
    time.sleep(2)
    assert watcher_polls(e2e_cdata) == polls, "no triggerer should be polling now"

    processes.spawn("triggerer", [sys.executable, "-m", "airflow", "triggerer", "--skip-serve-logs"])
    if not asset_state_store_in_this_airflow():
        wait_for_polls(e2e_cdata, wait_for_polls(e2e_cdata, polls, timeout=120) + 3)
        time.sleep(3)
        assert len(asset_runs(api)) == before, "no store: a fresh baseline, the connection not delivered"
        e2e_cdata.reauthenticate(made["id"])  # watched again: its next change runs the DAG, once
        runs = wait_for_asset_runs(api, before + 1, timeout=120)
        report = api.xcom(DAG_ID, runs[-1]["dag_run_id"], TASK_ID)
        assert [(r["connection_id"], r["change"]) for r in report] == [(made["id"], "changed")]
        return
    runs = wait_for_asset_runs(api, before + 1, timeout=120)
    report = api.xcom(DAG_ID, runs[-1]["dag_run_id"], TASK_ID)
    assert [r["connection_id"] for r in report] == [made["id"]]

    # Once: several polls of the new triggerer later, still one run for it, none for anything older.
    wait_for_polls(e2e_cdata, watcher_polls(e2e_cdata) + 3)
    time.sleep(3)
    runs = asset_runs(api)
    assert len(runs) == before + 1, runs
    reported = [r["connection_id"] for run in runs for r in api.xcom(DAG_ID, run["dag_run_id"], TASK_ID)]
    assert reported.count(made["id"]) == 1, reported
