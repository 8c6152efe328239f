"""What the end-to-end tests wait for and check, against the running services and the emulator: a
deferred task held by the triggerer, idle workers, the triggerer's polls, a HITL task waiting for a
person, the emulator's deletes, and the secret scan of task logs."""

from __future__ import annotations

import re
import time
from typing import Any

from tests.e2e.api import TERMINAL_TASK_STATES, AirflowAPI
from tests.e2e.conftest import E2ECData
from tests.e2e.harness import AirflowStack, jwt_signature, leaked_secrets, pem_body_lines
from tests.e2e.processes import command_lines

ONBOARDING = "cdata_customer_onboarding"
CLEANUP = "cdata_stale_connection_cleanup"
IDLE_WORKER = "airflow worker -- LocalExecutor: <idle>"
CLEARED_ID = re.compile(r"/connection/([^/]+)/metadata$")


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


def triggerer_polls(cdata: E2ECData, account_id: str, since: int = 0) -> list[Any]:
    """The triggerer's List Connections calls for ``account_id`` (the hook's async client, aiohttp),
    from the ``since``-th on. They list the whole child account, once for every trigger waiting on it
    (the shared poll): no filter in the query."""
    return [
        record
        for record in cdata.emulator.requests("list")[since:]
        if "aiohttp" in record.user_agent and (record.claims or {}).get("sub") == account_id
    ]


def wait_for_trigger_polls(
    api: AirflowAPI, run_id: str, cdata: E2ECData, at_least: int, since: int = 0, timeout: float = 30.0
) -> list[Any]:
    """The triggerer's polls of the child account (from the ``since``-th List Connections on), while
    the sensor stays deferred. A triggerer that cannot load or run the trigger fails the task: say so."""
    deadline = time.monotonic() + timeout
    while True:
        polls = triggerer_polls(cdata, cdata.account_id, since)
        if len(polls) >= at_least:
            return polls
        ti = api.task_instance(ONBOARDING, run_id, "wait_for_connection")
        if ti["state"] != "deferred":
            log = api.task_log(ONBOARDING, run_id, "wait_for_connection", max(ti["try_number"], 1))
            raise AssertionError(f"the sensor left deferred ({ti['state']}) before the save:\n{log}")
        assert time.monotonic() < deadline, f"the triggerer polled {len(polls)} times, not {at_least}"
        time.sleep(0.2)


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
