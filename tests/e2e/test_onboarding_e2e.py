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

import re
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Page

from airflow_provider_cdata import DEFAULT_MAX_RETRIES, get_provider_info
from tests.e2e.api import TERMINAL_TASK_STATES, AirflowAPI
from tests.e2e.browser import fill_and_save
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
from tests.e2e.processes import command_lines, listening_addresses

pytestmark = pytest.mark.e2e

ONBOARDING = "cdata_customer_onboarding"
REFRESH = "cdata_metadata_refresh"
CLEANUP = "cdata_stale_connection_cleanup"
OFFBOARDING = "cdata_customer_offboarding"
APPROVE_REJECT = ["Approve", "Reject"]
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
TRIGGER_CLASSPATH = "airflow_provider_cdata.triggers.ConnectionTrigger"
# The customer's app. Not on loopback: the browser fixture answers it with a stub page, offline.
APP_URL = "https://app.example.com/onboarded?customer=42"
IDLE_WORKER = "airflow worker -- LocalExecutor: <idle>"
CLEARED_ID = re.compile(r"/connection/([^/]+)/metadata$")


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
    polls = wait_for_trigger_polls(api, run_id, e2e_cdata, at_least=2)
    assert all(poll.claims and poll.claims["sub"] == e2e_cdata.account_id for poll in polls)
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


# -- helpers ------------------------------------------------------------------------------------------
def wait_for_approval_request(
    api: AirflowAPI,
    run_id: str,
    dag_id: str = CLEANUP,
    task_id: str = "approve_deletion",
    timeout: float = 60.0,
) -> dict[str, Any]:
    """The approval task once it waits for a person: Airflow 3.3 parks it in awaiting_input; 3.1 and
    3.2 defer it to the HITLTrigger in the triggerer."""
    deadline = time.monotonic() + timeout
    while True:
        ti = api.task_instance(dag_id, run_id, task_id)
        if ti["state"] in ("awaiting_input", "deferred"):
            return ti
        if ti["state"] in TERMINAL_TASK_STATES:
            report = "\n".join(api.run_logs(dag_id, run_id).values())
            raise AssertionError(f"{task_id} ended {ti['state']} without asking anyone:\n{report}")
        assert time.monotonic() < deadline, f"{task_id} still {ti['state']} after {timeout:.0f} s"
        time.sleep(0.2)


def wait_until_the_scheduler_saw_it_park(
    stack: AirflowStack, dag_id: str, run_id: str, task_id: str, timeout: float = 20.0
) -> None:
    """Until the scheduler has the executor's event for the process that parked the approval task.

    Why: Airflow (seen on 3.3.2) fails a HITL task answered before that event arrives. The answer
    re-queues the task at once; the parking process's "success" event then finds it queued, and the
    scheduler marks it failed ("state changed externally"). A person takes longer than the second
    this takes; a test does not. Every supported version logs the event in the same words.
    """
    event = re.compile(
        r"Received executor event with state \w+ for task instance TaskInstanceKey\("
        + re.escape(f"dag_id='{dag_id}', task_id='{task_id}', run_id='{run_id}'")
    )
    deadline = time.monotonic() + timeout
    while not event.search(stack.service_log("scheduler")):
        assert time.monotonic() < deadline, f"the scheduler never heard that {task_id} parked"
        time.sleep(0.2)


def deletes_in(cdata: E2ECData, account_id: str) -> list[str]:
    """The connection ids the services deleted as ``account_id``, in order, from the emulator's log."""
    return [
        record.path.rsplit("/", 1)[-1]
        for record in cdata.emulator.requests("delete")
        if (record.claims or {}).get("sub") == account_id
    ]


def wait_until_triggerer_holds(
    api: AirflowAPI, run_id: str, task_id: str, timeout: float = 60.0
) -> dict[str, Any]:
    """The task instance once it is deferred and the triggerer has taken its trigger."""
    api.wait_for_task_state(ONBOARDING, run_id, task_id, "deferred", timeout)
    deadline = time.monotonic() + timeout
    while True:
        ti = api.task_instance(ONBOARDING, run_id, task_id)
        job = ti.get("triggerer_job") or {}
        if ti["state"] == "deferred" and job.get("job_type") == "TriggererJob":
            return ti
        assert ti["state"] == "deferred", f"{task_id} left deferred before the customer saved: {ti}"
        assert time.monotonic() < deadline, f"no triggerer took {task_id}'s trigger: {ti}"
        time.sleep(0.2)


def assert_no_worker_runs(stack: AirflowStack, ti_id: str, timeout: float = 10.0) -> None:
    """No process of the stack runs the task instance, and every LocalExecutor worker is idle.

    A running task is visible in process titles: its LocalExecutor worker is retitled
    "airflow worker -- LocalExecutor: <ti id>" and the task process "airflow worker -- <ti id>". The
    worker retitles itself "<idle>" a moment after the task deferred, hence the short wait.
    """
    deadline = time.monotonic() + timeout
    while True:
        titles = command_lines(stack.pids())
        workers = [title for title in titles.values() if title.startswith("airflow worker -- LocalExecutor")]
        running = [title for title in titles.values() if ti_id in title]
        if workers and not running and all(title == IDLE_WORKER for title in workers):
            return
        assert time.monotonic() < deadline, f"a worker still runs {ti_id}: {running or workers}"
        time.sleep(0.2)


def wait_for_trigger_polls(
    api: AirflowAPI, run_id: str, cdata: E2ECData, at_least: int, timeout: float = 30.0
) -> list[Any]:
    """The triggerer's List Connections calls for this run (the hook's async client, httpx), while the
    sensor stays deferred. A triggerer that cannot load or run the trigger fails the task: say so."""
    deadline = time.monotonic() + timeout
    while True:
        polls = [
            record
            for record in cdata.emulator.requests("list")
            if "httpx" in record.user_agent and record.query.get("externalId") == f"onboarding-{run_id}"
        ]
        if len(polls) >= at_least:
            return polls
        ti = api.task_instance(ONBOARDING, run_id, "wait_for_connection")
        if ti["state"] != "deferred":
            log = api.task_log(ONBOARDING, run_id, "wait_for_connection", max(ti["try_number"], 1))
            raise AssertionError(f"the sensor left deferred ({ti['state']}) before the save:\n{log}")
        assert time.monotonic() < deadline, f"the triggerer polled {len(polls)} times, not {at_least}"
        time.sleep(0.2)


def cleared_id(path: str) -> str:
    match = CLEARED_ID.search(path)
    assert match, path
    return match.group(1)


def assert_no_secret_in(logs: dict[str, str], cdata: E2ECData, *secrets: str) -> None:
    """No minted JWT, no private key line, none of ``secrets`` and nothing token-like in any task log.

    Why this is a real check: Airflow 3.3 already replaces every "eyJ..." run in a log's string fields
    (any whole JWT) with "eyJ***", so looking for whole JWTs would pass without any masking of ours.
    This looks for (1) each JWT the emulator received, verbatim and by its signature alone, which does
    not start with "eyJ" (the e2e_cdata fixture's middleware records them), plus the connect URL's
    token and its signature passed in ``secrets``; (2) every base64 line of the private key, which no
    Airflow redaction knows; and (3) any random-looking base64url value at all (harness.OPAQUE_VALUE):
    a token minted but never sent, a key fragment cut differently, a secret in a non-string field.
    """
    tokens = sorted(cdata.bearer_tokens)
    assert tokens, "the services called the emulator with minted JWTs"
    assert [task for task, log in logs.items() if not log] == [], "every task has a log to scan"
    known = [*tokens, *map(jwt_signature, tokens), *pem_body_lines(cdata.keys.private_pem), *secrets]
    leaks = {task: found for task, log in logs.items() if (found := leaked_secrets(log, known))}
    assert leaks == {}
