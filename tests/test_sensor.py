"""ConnectionSensor in poke, reschedule and deferrable mode, and ConnectionTrigger on its own
(also rebuilt from serialize() in a fresh Python process, as a real triggerer does)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_cdata.criteria import ConnectionCriteria
from airflow_provider_cdata.emulator import complete_flow
from tests.conftest import CData, cdata_connection
from tests.dag_runner import run_dag

MODES = ("poke", "reschedule", "deferrable")


@contextmanager
def customer_after_polls(cdata: CData, polls: int, **flow: Any) -> Iterator[dict[str, str]]:
    """A customer who completes the connect page once the sensor has polled ``polls`` times."""
    outcome: dict[str, str] = {}
    body = flow.pop("body", {})

    def customer() -> None:
        deadline = time.monotonic() + 30
        while cdata.emulator.counters.count("list") < polls and time.monotonic() < deadline:
            time.sleep(0.05)
        outcome.update(complete_flow(cdata.connect_url(**body), **flow))

    thread = threading.Thread(target=customer, daemon=True)
    thread.start()
    try:
        yield outcome
    finally:
        thread.join(timeout=30)


@pytest.mark.parametrize("mode", MODES)
def test_sensor_waits_for_the_customers_connection(airflow_conn: CData, mode: str) -> None:
    airflow_conn.emulator.add_connection(airflow_conn.account_id, external_id="someone-else")
    with customer_after_polls(airflow_conn, 3, body={"externalId": "onboard-42"}, name="Acme CRM") as outcome:
        result = run_dag(f"cdata_test_sensor_{mode}", {"external_id": "onboard-42"})
    assert result.state == "success"
    connection = result.xcom("wait")
    assert connection["id"] == outcome["cdata_connection_id"]
    assert connection["externalId"] == "onboard-42"
    assert connection["name"] == "Acme CRM"
    assert airflow_conn.emulator.counters.count("list") >= 3
    queries = [r.query for r in airflow_conn.emulator.requests("list")]
    filtered = {"driver": "Salesforce", "externalId": "onboard-42"}
    if mode == "deferrable":
        # The sensor's own first poke filters; the trigger's polls list the whole account once for
        # every trigger waiting on it (the shared poll) and apply the criteria here.
        assert queries[0] == filtered
        assert all(not query for query in queries[1:]), queries
    else:
        assert all(query == filtered for query in queries), queries
    assert result.rendered("wait")["external_id"] == "onboard-42"


@pytest.mark.parametrize("mode", MODES)
def test_sensor_is_never_satisfied_by_a_decoy(airflow_conn: CData, mode: str) -> None:
    emu, start = airflow_conn.emulator, datetime.now(timezone.utc)
    emu.add_connection(
        airflow_conn.account_id, name="Acme CRM", last_modified=(start - timedelta(hours=1)).timestamp()
    )
    emu.add_connection(airflow_conn.account_id, name="Acme CRM", status="NotAuthenticated")
    emu.add_connection(airflow_conn.account_id, name="Acme CRM", data_source="MailChimp")
    emu.add_connection(airflow_conn.account_id, name="Another CRM")
    with customer_after_polls(airflow_conn, 3, name="Acme CRM") as outcome:
        result = run_dag(
            f"cdata_test_sensor_{mode}", {"connection_name": "Acme CRM", "modified_after": start.isoformat()}
        )
    assert result.state == "success"
    assert result.xcom("wait")["id"] == outcome["cdata_connection_id"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("soft_fail", [False, True])
def test_sensor_timeout_fails_or_skips_with_soft_fail(
    airflow_conn: CData, mode: str, soft_fail: bool
) -> None:
    result = run_dag(f"cdata_test_sensor_{mode}_timeout{'_soft' if soft_fail else ''}")
    assert result.task_states() == {"wait": "skipped" if soft_fail else "failed"}
    assert airflow_conn.emulator.counters.count("list") >= 2


def test_sensor_fails_at_once_on_an_error_waiting_cannot_fix(airflow_conn: CData) -> None:
    airflow_conn.emulator.inject("status", status=403, route="list")
    started = time.monotonic()
    result = run_dag("cdata_test_sensor_deferrable", {"external_id": "x"})
    assert result.state == "failed"
    assert time.monotonic() - started < 15, "a 403 ends the wait instead of waiting for the timeout"


# -- the predicate ----------------------------------------------------------------------------------
def test_criteria_match_every_given_criterion_and_tolerate_a_missing_status() -> None:
    criteria = ConnectionCriteria.build(
        external_id="e", connection_name="n", data_source="salesforce", modified_after="2024-01-01T00:00:00Z"
    )
    base = {
        "externalId": "e",
        "name": "n",
        "dataSource": "Salesforce",
        "lastModified": "2024-01-01T00:00:00.1Z",
    }
    assert criteria.matches(base), "no status field (older API versions) passes"
    assert criteria.matches({**base, "status": "Authenticated"})
    assert not criteria.matches({**base, "status": "NotAuthenticated"})
    assert not criteria.matches({**base, "externalId": "E"})
    assert not criteria.matches({**base, "name": "N"})
    assert not criteria.matches({**base, "dataSource": "MailChimp"})
    assert not criteria.matches({**base, "lastModified": "2024-01-01T00:00:00Z"}), "strictly after"
    assert not criteria.matches({**base, "lastModified": "garbage"})
    assert ConnectionCriteria.build(statuses=None).matches({"status": "NotAuthenticated"})


def test_criteria_survive_a_plain_json_round_trip() -> None:
    criteria = ConnectionCriteria.build(
        external_id="e", modified_after=datetime(2024, 5, 1, 12, tzinfo=timezone.utc)
    )
    assert ConnectionCriteria.from_dict(json.loads(json.dumps(criteria.to_dict()))) == criteria


# -- the trigger on its own ------------------------------------------------------------------------------
def _trigger(criteria: dict[str, Any], deadline: float | None = None, poke_interval: float = 0.2) -> Any:
    from airflow_provider_cdata.triggers import ConnectionTrigger

    return ConnectionTrigger(criteria=criteria, poke_interval=poke_interval, deadline=deadline)


async def _the_event(trigger: Any) -> dict[str, Any]:
    """The payload of the one event ``run()`` fires (it must fire exactly one, then end)."""
    fired: list[dict[str, Any]] = [event.payload async for event in trigger.run()]
    assert len(fired) == 1, fired
    return fired[0]


def test_trigger_serializes_plain_values_only() -> None:
    trigger = _trigger({"external_id": "e", "statuses": ["Authenticated"]}, deadline=1.5e9)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_cdata.triggers.ConnectionTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs
    rebuilt = type(trigger)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)


def test_trigger_survives_503s_and_a_dropped_connection_mid_wait(
    cdata: CData, monkeypatch: pytest.MonkeyPatch
) -> None:
    _connection_env(monkeypatch, cdata, max_retries=0)  # every fault reaches the trigger itself
    cdata.emulator.inject("status", status=503, route="list", times=2)
    cdata.emulator.inject("drop", route="list", times=1)
    with customer_after_polls(cdata, 5, body={"externalId": "late"}) as outcome:
        event = asyncio.run(_the_event(_trigger({"external_id": "late"}, deadline=time.time() + 30)))
    assert event["status"] == "success", event
    assert event["connection"]["id"] == outcome["cdata_connection_id"]
    assert cdata.emulator.counters.faults == {"status": 2, "drop": 1}
    assert json.loads(json.dumps(event)) == event


def test_trigger_times_out_at_the_deadline(cdata: CData, monkeypatch: pytest.MonkeyPatch) -> None:
    _connection_env(monkeypatch, cdata)
    started = time.monotonic()
    event = asyncio.run(_the_event(_trigger({"external_id": "never"}, deadline=time.time() + 1)))
    assert event["status"] == "timeout"
    assert "never" in event["message"]
    assert 0.9 < time.monotonic() - started < 5


def test_trigger_reports_an_error_waiting_cannot_fix(cdata: CData, monkeypatch: pytest.MonkeyPatch) -> None:
    _connection_env(monkeypatch, cdata)
    cdata.emulator.inject("status", status=404, route="list")
    event = asyncio.run(_the_event(_trigger({"external_id": "x"}, deadline=time.time() + 30)))
    assert event["status"] == "error"
    assert "404" in event["message"]


def test_trigger_reports_invalid_criteria_without_calling_cdata(
    cdata: CData, monkeypatch: pytest.MonkeyPatch
) -> None:
    _connection_env(monkeypatch, cdata)
    event = asyncio.run(_the_event(_trigger({"external_id": "x", "statuses": [""]})))
    assert event == {"status": "error", "connection": None, "message": event["message"]}
    assert event["message"].startswith("Invalid criteria: statuses must be")
    assert cdata.emulator.counters.count("list", 200) == 0


def test_the_sensor_reads_each_event_the_trigger_can_fire() -> None:
    from airflow_provider_cdata import triggers
    from airflow_provider_cdata._compat import AirflowSensorTimeout
    from airflow_provider_cdata.exceptions import CDataError
    from airflow_provider_cdata.sensors import ConnectionSensor

    sensor = ConnectionSensor(task_id="wait", external_id="x")
    found = {"id": "c1", "name": "Acme"}
    assert sensor.execute_complete({}, triggers.event_payload(triggers.SUCCESS, "found", found)) == found
    with pytest.raises(AirflowSensorTimeout, match="too late"):
        sensor.execute_complete({}, triggers.event_payload(triggers.TIMEOUT, "too late"))
    with pytest.raises(CDataError, match="HTTP 404"):
        sensor.execute_complete({}, triggers.event_payload(triggers.ERROR, "HTTP 404"))


def _connection_env(monkeypatch: pytest.MonkeyPatch, cdata: CData, **extra: Any) -> dict[str, str]:
    value = json.dumps(cdata_connection(cdata, timeout=5, **extra))
    monkeypatch.setenv("AIRFLOW_CONN_CDATA_DEFAULT", value)
    return {"AIRFLOW_CONN_CDATA_DEFAULT": value}


REBUILD_AND_RUN = """
import asyncio, importlib, json, sys
classpath, kwargs = json.loads(sys.stdin.read())
module, _, name = classpath.rpartition(".")
trigger = getattr(importlib.import_module(module), name)(**kwargs)

async def first_event():
    async for event in trigger.run():
        return event.payload

print("EVENT " + json.dumps(asyncio.run(first_event())))
"""


def test_trigger_rebuilt_in_a_fresh_process_from_serialize(
    cdata: CData, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {**os.environ, **_connection_env(monkeypatch, cdata)}
    serialized = _trigger({"external_id": "fresh-process"}, deadline=time.time() + 60).serialize()
    with customer_after_polls(cdata, 2, body={"externalId": "fresh-process"}) as outcome:
        done = subprocess.run(
            [sys.executable, "-c", REBUILD_AND_RUN],
            input=json.dumps(serialized),
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    event = json.loads(done.stdout.split("EVENT ", 1)[1])
    assert event["status"] == "success"
    assert event["connection"]["id"] == outcome["cdata_connection_id"]


@pytest.mark.parametrize(("setting", "expected"), [("True", True), ("False", False)])
def test_deferrable_defaults_to_airflows_default_deferrable(
    monkeypatch: pytest.MonkeyPatch, setting: str, expected: bool
) -> None:
    from airflow_provider_cdata.sensors import ConnectionSensor

    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", setting)
    assert ConnectionSensor(task_id="wait", external_id="x").deferrable is expected
    assert (
        ConnectionSensor(task_id="wait", external_id="x", deferrable=not expected).deferrable is not expected
    )
