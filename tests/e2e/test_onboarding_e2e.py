"""The onboarding story the way it happens in production, on one machine.

Real Airflow 3 services as separate processes (api-server, scheduler with LocalExecutor, dag-processor,
triggerer; SQLite) run the example DAGs of ``dags_examples/`` against the emulator; the customer is a
headless Chromium. One set of services serves the whole module (starting one costs ~35 s).

What ``airflow dags test`` cannot show and this does: the sensor's trigger is serialised, stored and
rebuilt from its classpath in the triggerer process; the deferred task holds no worker slot while a
person fills in the connect page; the connect URL travels through XCom and the REST API; the scheduler
creates and runs a scheduled, mapped run; a cleanup and an offboarding wait for a person's approval,
answered through the REST API, and then delete exactly what they showed; the task logs the api-server
serves hold no secret.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Page

from airflow_provider_cdata import DEFAULT_MAX_RETRIES, get_provider_info
from airflow_provider_cdata.emulator import KeyPair, complete_flow
from tests.e2e import airflow_ui
from tests.e2e.browser import fill_and_save
from tests.e2e.checks import (
    CLEANUP,
    ONBOARDING,
    assert_no_secret_in,
    assert_no_worker_runs,
    cleared_id,
    deletes_in,
    triggerer_polls,
    wait_for_approval_request,
    wait_for_trigger_polls,
    wait_until_the_scheduler_saw_it_park,
    wait_until_triggerer_holds,
)
from tests.e2e.conftest import E2ECData
from tests.e2e.harness import (
    ADMIN_USER,
    SERVICES,
    AirflowStack,
    cdata_connection_env,
    jwt_signature,
    leaked_secrets,
    pem_body_lines,
)
from tests.e2e.processes import listening_addresses

pytestmark = pytest.mark.e2e

REFRESH = "cdata_metadata_refresh"
OFFBOARDING = "cdata_customer_offboarding"
APPROVE_REJECT = ["Approve", "Reject"]
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
TRIGGER_CLASSPATH = "airflow_provider_cdata.triggers.ConnectionTrigger"
# The customer's app. Not on loopback: the browser fixture answers it with a stub page, offline.
APP_URL = "https://app.example.com/onboarded?customer=42"
POKE_WINDOW = 5.0  # seconds of polls counted while all ten wait (the DAG polls every second here)


@pytest.fixture(scope="module")
def airflow_env(e2e_cdata: E2ECData) -> dict[str, str]:
    """``cdata_default`` for the emulator, and the onboarding sensor polling every second, not every 30."""
    connection = cdata_connection_env(
        e2e_cdata.base_url, e2e_cdata.parent_id, e2e_cdata.keys.private_pem, e2e_cdata.account_id
    )
    return {**connection, "CDATA_ONBOARDING_POKE_SECONDS": "1"}


def test_every_service_is_healthy_and_only_the_api_server_listens_on_loopback(
    airflow_stack: AirflowStack,
) -> None:
    health = airflow_stack.api.health()
    assert {part: health[part]["status"] for part in health} == {
        "metadatabase": "healthy",
        "scheduler": "healthy",
        "triggerer": "healthy",
        "dag_processor": "healthy",
    }
    assert all(airflow_stack.processes.services[name].running() for name in SERVICES)
    assert {dag["dag_id"] for dag in airflow_stack.api.dags()} == {
        ONBOARDING,
        REFRESH,
        CLEANUP,
        OFFBOARDING,
        "cdata_on_connection_ready",  # paused: its asset watcher runs in tests/e2e/test_asset_watcher_e2e.py
    }

    listening = listening_addresses(airflow_stack.pids())

    assert list(listening) == [airflow_stack.api_url.removeprefix("http://")], "only the api-server listens"


def test_the_api_server_serves_the_cdata_connection_form(airflow_stack: AirflowStack) -> None:
    """The form the UI draws for a new ``cdata`` connection, as the running api-server serves it: on
    Airflow 3.2+ from the provider info, before 3.2 from the hook's methods; the same fields either way."""
    (cdata,) = [meta for meta in airflow_stack.api.hook_meta() if meta["connection_type"] == "cdata"]
    declared = next(c for c in get_provider_info()["connection-types"] if c["connection-type"] == "cdata")
    behaviour = declared["ui-field-behaviour"]
    standard = cdata["standard_fields"]
    titles = {name: standard[name]["title"] for name in ("host", "login", "password")}
    assert titles == behaviour["relabeling"]
    assert standard["host"]["placeholder"] == behaviour["placeholders"]["host"]
    assert (standard["port"]["hidden"], standard["url_schema"]["hidden"]) == (True, True)
    extra = cdata["extra_fields"]
    assert {name: spec["schema"]["title"] for name, spec in extra.items()} == {
        name: spec["label"] for name, spec in declared["conn-fields"].items()
    }
    assert extra["max_retries"]["value"] == DEFAULT_MAX_RETRIES
    assert extra["token_lifetime"]["value"] is None


def test_customer_connects_in_chromium_while_the_sensor_waits_deferred_in_the_real_triggerer(
    airflow_stack: AirflowStack, e2e_cdata: E2ECData, page: Page, artifacts_dir: Path
) -> None:
    api, emulator = airflow_stack.api, e2e_cdata.emulator
    api.unpause(ONBOARDING)
    # The tenant's child account exists (the fixture made it with this external id): it is found.
    conf = {"tenant_id": "e2e-customer", "data_source": "Salesforce", "redirect_url": APP_URL}
    since = len(emulator.requests("list"))
    run_id = api.trigger(ONBOARDING, conf=conf)
    external_id = f"onboarding-{run_id}"

    # The product's app reads the link from the run's XCom and sends the customer there.
    api.wait_for_task_state(ONBOARDING, run_id, "create_connect_link", "success")
    connect_url = api.xcom(ONBOARDING, run_id, "create_connect_link")
    assert connect_url.startswith(f"{emulator.root_url}/"), connect_url
    page.goto(connect_url)

    # While the customer is on the page: the sensor is deferred, held by the triggerer, not by a worker.
    sensor = wait_until_triggerer_holds(api, run_id, "wait_for_connection")
    assert sensor["trigger"]["classpath"] == TRIGGER_CLASSPATH
    pool = api.pool()
    assert (pool["running_slots"], pool["occupied_slots"], pool["deferred_slots"]) == (0, 0, 1), pool
    assert_no_worker_runs(airflow_stack, sensor["id"])
    polls = wait_for_trigger_polls(api, run_id, e2e_cdata, at_least=2, since=since)
    assert all(not poll.query for poll in polls), "the shared poll lists the account; the trigger filters"
    assert api.task_instance(ONBOARDING, run_id, "wait_for_connection")["state"] == "deferred"

    screenshot = artifacts_dir / "onboarding-connect-page.png"
    landed = fill_and_save(page, name="Acme Salesforce", screenshot=screenshot)

    assert page.url.startswith(f"{APP_URL}&"), page.url
    assert page.locator("h1").inner_text() == "Back in the app", "the stub, not the internet, answered"
    assert landed["cdata_connection_status"] == "success"
    assert screenshot.read_bytes().startswith(b"\x89PNG"), "a screenshot of the filled-in page, for CI"

    run = api.wait_for_run(ONBOARDING, run_id)
    assert run["state"] == "success"
    connection = api.xcom(ONBOARDING, run_id, "wait_for_connection")
    assert connection["id"] == landed["cdata_connection_id"]
    assert (connection["externalId"], connection["name"]) == (external_id, "Acme Salesforce")
    assert api.xcom(ONBOARDING, run_id, "report")["id"] == connection["id"]
    assert api.xcom(ONBOARDING, run_id, "child_account")["id"] == e2e_cdata.account_id
    assert emulator.counters.count("account_create") == 0
    # refresh_metadata cleared exactly the new connection, once, as its child account.
    clears = [
        cleared_id(record.path)
        for record in emulator.requests("clear_metadata")
        if (record.claims or {}).get("sub") == e2e_cdata.account_id
    ]
    assert clears == [connection["id"]]
    assert (emulator.connection(connection["id"]) or {})["metadataClears"] == 1

    logs = api.run_logs(ONBOARDING, run_id)
    sensor_log = logs["wait_for_connection"]
    assert "Pausing task as DEFERRED" in sensor_log
    assert "Waiting for a connection matching" in sensor_log, "the trigger's own log, from the triggerer"
    assert f"Connection {connection['id']} (Acme Salesforce) appeared" in sensor_log
    # The link was logged, its token cut: "***" by the provider's masking, "eyJ***" (or "eyJ******",
    # redacted twice, in the task and its supervisor) by Airflow's own JWT redaction, whichever came first.
    assert re.search(r"Connect link for the customer.*[?&]token=(eyJ)?\*\*\*", logs["hand_off_link"])
    token = parse_qs(urlsplit(connect_url).query)["token"][0]
    assert_no_secret_in(logs, e2e_cdata, token, jwt_signature(token))


def test_a_scheduled_metadata_refresh_clears_every_connection_of_every_account_once(
    airflow_stack: AirflowStack, e2e_cdata: E2ECData
) -> None:
    api, emulator = airflow_stack.api, e2e_cdata.emulator
    for count in (3, 2):
        account = emulator.add_account(e2e_cdata.parent_id)["id"]
        for _ in range(count):
            emulator.add_connection(account)
    # Every child account, as List Accounts will answer: nothing to configure but unpausing the DAG.
    accounts = [account["id"] for account in emulator.store.list_accounts(e2e_cdata.parent_id)]
    seeded = {account: [c["id"] for c in emulator.connections(account)] for account in accounts}
    clears_before = len(emulator.requests("clear_metadata"))
    api.unpause(REFRESH)

    # A past start_date and catchup=False: the scheduler itself creates the run of the latest interval.
    run = api.wait_for_first_run(REFRESH, run_type="scheduled")

    assert (run["state"], run["run_type"], run["triggered_by"]) == ("success", "scheduled", "timetable")
    run_id = run["dag_run_id"]
    assert api.xcom(REFRESH, run_id, "child_accounts") == accounts
    states = {(ti["task_id"], ti["map_index"]): ti["state"] for ti in api.task_instances(REFRESH, run_id)}
    assert states == {
        ("child_accounts", -1): "success",
        **{("clear_metadata", index): "success" for index in range(len(accounts))},
    }
    for index, account in enumerate(accounts):
        assert sorted(api.xcom(REFRESH, run_id, "clear_metadata", map_index=index)) == sorted(seeded[account])
    clears = [
        (cleared_id(record.path), (record.claims or {}).get("sub"), record.status)
        for record in emulator.requests("clear_metadata")[clears_before:]
    ]
    expected = {(cid, account, 200) for account, ids in seeded.items() for cid in ids}
    assert Counter(clears) == Counter(expected), "one clear per connection, as its own child account"

    assert_no_secret_in(api.run_logs(REFRESH, run_id), e2e_cdata)


def test_ten_onboardings_of_one_account_share_one_poll_in_the_real_triggerer(
    airflow_stack: AirflowStack, e2e_cdata: E2ECData
) -> None:
    """Ten runs of one child account deferred at once: the triggerer's ten ConnectionTriggers share one
    List Connections per poke interval (1 s here), and each resumes on its own customer's connection."""
    api, emulator = airflow_stack.api, e2e_cdata.emulator
    api.unpause(ONBOARDING)
    conf = {"tenant_id": "e2e-customer", "data_source": "Salesforce", "redirect_url": APP_URL}
    run_ids = [api.trigger(ONBOARDING, conf=conf) for _ in range(10)]
    for run_id in run_ids:
        wait_until_triggerer_holds(api, run_id, "wait_for_connection", timeout=120)
    links = {run_id: api.xcom(ONBOARDING, run_id, "create_connect_link") for run_id in run_ids}

    # All ten wait in the triggerer: count its polls of the account over a few poke intervals.
    since, started = len(emulator.requests("list")), time.monotonic()
    time.sleep(POKE_WINDOW)
    polls, elapsed = len(triggerer_polls(e2e_cdata, e2e_cdata.account_id, since)), time.monotonic() - started
    assert {api.task_instance(ONBOARDING, r, "wait_for_connection")["state"] for r in run_ids} == {"deferred"}
    # Polling on its own, each trigger would make one call a second: ~10 a second.
    assert 1 <= polls <= 2 * elapsed, f"{polls} List Connections in {elapsed:.1f} s for 10 waiting triggers"

    landed = {run_id: complete_flow(url, name=f"Customer {run_id[-6:]}") for run_id, url in links.items()}
    for run_id in run_ids:
        assert api.wait_for_run(ONBOARDING, run_id, timeout=120)["state"] == "success"
        connection = api.xcom(ONBOARDING, run_id, "wait_for_connection")
        assert connection["id"] == landed[run_id]["cdata_connection_id"]
        assert connection["externalId"] == f"onboarding-{run_id}"


def test_a_cleanup_waits_for_approval_then_deletes_exactly_the_connections_it_showed(
    airflow_stack: AirflowStack, e2e_cdata: E2ECData
) -> None:
    api, emulator = airflow_stack.api, e2e_cdata.emulator
    account = emulator.add_account(e2e_cdata.parent_id)["id"]
    long_ago = (datetime.now(timezone.utc) - timedelta(days=120)).timestamp()
    shown = [
        emulator.add_connection(account, "Salesforce", name=f"old {i}", last_modified=long_ago)["id"]
        for i in range(3)
    ]
    fresh = emulator.add_connection(account, name="in use")["id"]
    api.unpause(CLEANUP)  # the scheduler's own run of the latest week is a dry run of cdata_default's
    run_id = api.trigger(CLEANUP, conf={"account_id": account, "dry_run": False})

    # The run stops at Airflow's ApprovalOperator (awaiting_input on 3.3+, deferred before), and asks.
    waiting = wait_for_approval_request(api, run_id)
    detail = api.hitl_detail(CLEANUP, run_id, "approve_deletion")
    assert (detail["subject"], detail["options"]) == ("Delete 3 stale CData connections?", APPROVE_REJECT)
    assert (detail["response_received"], detail["defaults"]) == (False, ["Reject"])
    assert UUID.findall(detail["body"]) == [account, *shown], "the body lists exactly what would go"
    assert "| old 0 | Salesforce |" in detail["body"]
    assert api.task_instance(CLEANUP, run_id, "delete_stale_connections")["state"] in (None, "none")
    assert deletes_in(e2e_cdata, account) == [], "nothing is deleted while the request waits"

    # While it waits: the customer re-authenticates one shown connection, and one more goes stale.
    e2e_cdata.reauthenticate(shown[2], account_id=account)
    late = emulator.add_connection(account, name="late", last_modified=long_ago)["id"]
    assert api.task_instance(CLEANUP, run_id, "approve_deletion")["state"] == waiting["state"]

    wait_until_the_scheduler_saw_it_park(airflow_stack, CLEANUP, run_id, "approve_deletion")
    answered = api.respond(CLEANUP, run_id, "approve_deletion", ["Approve"])
    assert answered["chosen_options"] == ["Approve"]
    run = api.wait_for_run(CLEANUP, run_id)

    assert run["state"] == "success"
    assert api.xcom(CLEANUP, run_id, "delete_stale_connections") == shown[:2]
    assert api.xcom(CLEANUP, run_id, "delete_stale_connections", key="skipped") == [shown[2]]
    assert deletes_in(e2e_cdata, account) == shown[:2], "only what was shown; the re-authenticated one kept"
    assert {c["id"] for c in emulator.connections(account)} == {shown[2], fresh, late}
    detail = api.hitl_detail(CLEANUP, run_id, "approve_deletion")
    assert (detail["response_received"], detail["responded_by_user"]["name"]) == (True, ADMIN_USER)
    log = api.task_log(CLEANUP, run_id, "delete_stale_connections")
    assert f"Skipping connection {shown[2]}: modified since it was listed" in log
    logs = api.run_logs(CLEANUP, run_id)
    assert logs.pop("no_approval_needed") == "", "the bypass around the approval never ran"
    assert_no_secret_in(logs, e2e_cdata)


def test_an_offboarding_waits_for_approval_then_deletes_the_connections_and_the_account(
    airflow_stack: AirflowStack, e2e_cdata: E2ECData
) -> None:
    api, emulator = airflow_stack.api, e2e_cdata.emulator
    account = emulator.add_account(e2e_cdata.parent_id, external_id="leaving-e2e")["id"]
    shown = [emulator.add_connection(account, "Salesforce", name=f"theirs {i}")["id"] for i in range(2)]
    api.unpause(OFFBOARDING)
    run_id = api.trigger(OFFBOARDING, conf={"tenant_id": "leaving-e2e", "dry_run": False})

    wait_for_approval_request(api, run_id, OFFBOARDING, "approve_offboarding")
    detail = api.hitl_detail(OFFBOARDING, run_id, "approve_offboarding")
    assert detail["subject"] == "Offboard leaving-e2e: delete its child account and 2 connections?"
    assert UUID.findall(detail["body"]) == [account, *shown]
    assert deletes_in(e2e_cdata, account) == []
    assert emulator.counters.count("account_delete") == 0

    wait_until_the_scheduler_saw_it_park(airflow_stack, OFFBOARDING, run_id, "approve_offboarding")
    api.respond(OFFBOARDING, run_id, "approve_offboarding", ["Approve"])
    run = api.wait_for_run(OFFBOARDING, run_id)

    assert run["state"] == "success"
    assert deletes_in(e2e_cdata, account) == shown
    assert api.xcom(OFFBOARDING, run_id, "delete_account") == [account]
    assert emulator.store.find_account(e2e_cdata.parent_id, account) is None
    logs = api.run_logs(OFFBOARDING, run_id)
    assert logs.pop("no_approval_needed") == ""
    assert_no_secret_in(logs, e2e_cdata)


def test_a_cdata_connection_made_in_the_airflow_ui_form_passes_its_test_and_a_wrong_key_is_named(
    airflow_stack: AirflowStack, e2e_cdata: E2ECData, other_keys: KeyPair, page: Page, artifacts_dir: Path
) -> None:
    """Issue 17, item 5: what a user does in Airflow's own UI, in Chromium, on every version of the matrix.

    The form is the one the running api-server draws (3.2+ from the provider info, 3.1 from the hook);
    its Test button runs the hook's ``test_connection`` in the api-server, against the emulator. Where
    Airflow's Test button refuses every connection without a port before any hook runs (3.3.2:
    ``airflow_ui.button_refuses_connections_without_a_port``), the test proves the refusal the user sees
    and runs the same ``test_connection`` on the connection the form saved with ``airflow connections
    test``. Screenshots: ``artifacts/form-<airflow version>/``.
    """
    import airflow

    shots = artifacts_dir.parent / f"form-{airflow.__version__}"
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    refuses_portless = airflow_ui.button_refuses_connections_without_a_port()
    page.set_viewport_size({"width": 1280, "height": 1000})
    api, conn_id = airflow_stack.api, "cdata_from_the_form"
    # Its own child account, so the other tests' counts of the emulator's calls are not touched.
    account_id = e2e_cdata.emulator.add_account(e2e_cdata.parent_id, external_id="form-user")["id"]
    airflow_ui.sign_in(page, airflow_stack.api_url, api.username, api.password)

    dialog = airflow_ui.add_cdata_connection(
        page,
        conn_id,
        host=e2e_cdata.base_url,
        login=e2e_cdata.parent_id,
        private_pem=e2e_cdata.keys.private_pem,
        account_id=account_id,
        screenshot=shots / "1-add-form.png",
    )
    dialog.screenshot(path=str(shots / "1-add-form-extras.png"))
    stored = airflow_ui.save(page, dialog, "POST")
    assert (stored["conn_type"], stored["host"], stored["login"]) == (
        "cdata",
        e2e_cdata.base_url,
        e2e_cdata.parent_id,
    )
    assert json.loads(stored["extra"])["account_id"] == account_id
    assert stored["password"] != e2e_cdata.keys.private_pem, "the api-server answers with the key masked"

    passed = airflow_ui.press_test(page, conn_id)
    if refuses_portless:  # Airflow 3.3.2: the button cannot test it; the CLI runs the same test
        assert passed.refused, passed
        assert "differs from the stored connection" in passed.message, passed.message
        airflow_ui.result_icon(page, conn_id, "red").wait_for()
        # All the user is shown: the api-server's reason is in the answer only.
        page.get_by_text("Bad Request").first.wait_for()
        page.screenshot(path=str(shots / "2-test-refused-by-airflow.png"))
        passed = airflow_ui.cli_test(airflow_stack, conn_id, "connections-test-good-key")
    else:
        assert passed.status, passed.message
        assert passed.message.startswith(f"Connected to {e2e_cdata.base_url}"), passed.message
        airflow_ui.result_icon(page, conn_id, "green").wait_for()
        page.screenshot(path=str(shots / "2-test-passed.png"))
    assert passed.status, passed.message
    tested = [r for r in e2e_cdata.emulator.requests("list") if (r.claims or {}).get("sub") == account_id]
    assert tested, "the Test button reached the emulator"

    # The same connection, edited to a key the emulator has never seen: the message says why.
    dialog = airflow_ui.open_edit(page, conn_id)
    dialog.get_by_label(airflow_ui.PASSWORD).fill(other_keys.private_pem)
    dialog.screenshot(path=str(shots / "3-edit-other-key.png"))
    airflow_ui.save(page, dialog, "PATCH")
    failed = airflow_ui.press_test(page, conn_id)
    if refuses_portless:
        assert failed.refused, failed
        failed = airflow_ui.cli_test(airflow_stack, conn_id, "connections-test-unknown-key")
    else:
        airflow_ui.result_icon(page, conn_id, "red").wait_for()
        page.get_by_text("signature does not match the registered public key").first.wait_for()
        page.screenshot(path=str(shots / "4-test-failed.png"))
    assert not failed.status
    assert "HTTP 401" in failed.message, failed.message
    assert "signature does not match the registered public key" in failed.message, failed.message
    assert e2e_cdata.parent_id in failed.message, "it names the parent account the key must belong to"
    known = [*pem_body_lines(other_keys.private_pem), *pem_body_lines(e2e_cdata.keys.private_pem)]
    assert leaked_secrets(failed.message + passed.message, known) == []
    expected = (
        ["2-test-refused-by-airflow.png"] if refuses_portless else ["2-test-passed.png", "4-test-failed.png"]
    )
    assert sorted(path.name for path in shots.glob("*.png")) == sorted(
        ["1-add-form.png", "1-add-form-extras.png", "3-edit-other-key.png", *expected]
    )
