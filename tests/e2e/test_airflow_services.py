"""The harness proved on its own DAGs (tests/e2e/dags): real services, a real triggerer, a real browser.

The onboarding story with the provider's own operators and sensor gets the same treatment in the final
suite; here a stand-in trigger (tests/e2e/deferrable.py) waits for the customer's connection.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests.conftest import CData
from tests.e2e.browser import save_connect_page
from tests.e2e.deferrable import CLASSPATH
from tests.e2e.harness import JWT, SERVICES, AirflowStack, pem_body_lines
from tests.e2e.processes import listening_addresses
from tests.e2e.test_connect_page_in_chromium import connect_url

pytestmark = pytest.mark.e2e

DAGS = Path(__file__).parent / "dags"
WAIT_DAG, WAIT_TASK = "e2e_wait_for_connection", "wait_for_connection"
LIST_DAG, LIST_TASK = "e2e_scheduled_list", "list_connections"


@pytest.fixture(scope="module")
def airflow_dags_folder() -> Path:
    return DAGS


def test_every_service_is_healthy_and_listens_on_loopback_only(airflow_stack: AirflowStack) -> None:
    health = airflow_stack.api.health()
    assert {part: health[part]["status"] for part in health} == {
        "metadatabase": "healthy",
        "scheduler": "healthy",
        "triggerer": "healthy",
        "dag_processor": "healthy",
    }
    services = airflow_stack.processes.services
    assert all(services[name].running() for name in SERVICES)

    listening = listening_addresses(airflow_stack.pids())

    assert list(listening) == [airflow_stack.api_url.removeprefix("http://")], "only the api-server listens"
    hosts = {address.rsplit(":", 1)[0].strip("[]") for address in listening}
    assert all(ipaddress.ip_address(host).is_loopback for host in hosts)


def test_a_deferred_task_waits_for_the_customer_and_resumes_in_the_real_triggerer(
    airflow_stack: AirflowStack, e2e_cdata: CData, page: Page
) -> None:
    api = airflow_stack.api
    api.unpause(WAIT_DAG)
    run_id = api.trigger(WAIT_DAG, conf={"external_id": "onboarding-1"})
    url = connect_url(e2e_cdata, externalId="onboarding-1")

    deferred = api.wait_for_task_state(WAIT_DAG, run_id, WAIT_TASK, "deferred")
    assert deferred["trigger"]["classpath"] == CLASSPATH
    page.goto(url)  # the customer is on the page; the task still holds no worker slot
    assert api.task_instance(WAIT_DAG, run_id, WAIT_TASK)["state"] == "deferred"
    assert api.pool()["running_slots"] == 0
    assert api.pool()["deferred_slots"] == 1

    params = save_connect_page(page, url)

    run = api.wait_for_run(WAIT_DAG, run_id)
    assert run["state"] == "success"
    connection = api.xcom(WAIT_DAG, run_id, WAIT_TASK)
    assert connection["id"] == params["cdata_connection_id"]
    assert connection["externalId"] == "onboarding-1"
    log = api.task_log(WAIT_DAG, run_id, WAIT_TASK)
    assert "Pausing task as DEFERRED" in log
    assert f"Connection {connection['id']} appeared" in log, "the trigger's own log, from the triggerer"
    assert f"Resumed: connection {connection['id']}" in log


def test_a_scheduled_run_calls_the_emulator_with_the_connection_from_the_environment(
    airflow_stack: AirflowStack, e2e_cdata: CData
) -> None:
    api = airflow_stack.api
    e2e_cdata.emulator.reset_counters()
    api.unpause(LIST_DAG)

    run = api.wait_for_first_run(LIST_DAG, run_type="scheduled")

    assert run["state"] == "success"
    assert run["triggered_by"] == "timetable"
    listed = api.xcom(LIST_DAG, run["dag_run_id"], LIST_TASK)
    assert listed["account_id"] == e2e_cdata.account_id
    (call,) = e2e_cdata.emulator.requests("list")
    assert call.status == 200
    assert (call.claims or {})["iss"] == e2e_cdata.parent_id, "signed with the PEM from AIRFLOW_CONN_..."
    log = api.run_logs(LIST_DAG, run["dag_run_id"])[LIST_TASK]
    assert f"Listed {len(listed['connection_ids'])} connections" in log
    assert "with token eyJ***" in log, "the task printed its JWT; Airflow's log redaction cut it"
    assert JWT.findall(log) == []
    assert not [line for line in pem_body_lines(e2e_cdata.keys.private_pem) if line in log]
