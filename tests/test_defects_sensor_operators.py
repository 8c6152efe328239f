"""Issue 16, defects 1, 2, 10 and 11: the sensor's ``statuses``, plain dates as times, and clear-all with a
listing CData should never send (a connection without a usable id, a connection listed twice).

Every DAG here is run by Airflow (``dag.test()``) against the emulator over HTTP; the odd listings come
from a small loopback proxy in front of the emulator that rewrites List Connections answers, so the
clears still reach the emulator and its state says what was done.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_cdata.criteria import ConnectionCriteria, parse_time
from airflow_provider_cdata.exceptions import CDataAPIError, CDataValidationError
from tests.conftest import CData, cdata_connection
from tests.dag_runner import DagResult
from tests.dag_source import dag_import_errors, run_dag_source
from tests.test_sensor import MODES, customer_after_polls

# The logical date of the runs that template ``ds``: its day at 00:00 UTC is the bound under test.
LOGICAL_DATE = datetime(2026, 12, 1, 15, 30, tzinfo=timezone.utc)


RunSource = Callable[..., DagResult]


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RunSource:
    """``run(source, dag_id, logical_date=None)``: one run of a DAG the test wrote, by ``dag.test()``."""

    def run_source(source: str, dag_id: str, logical_date: datetime | None = None) -> DagResult:
        return run_dag_source(source, dag_id, tmp_path / "dags", monkeypatch, logical_date=logical_date)

    return run_source


DAG_HEAD = """
from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_cdata.operators import ClearMetadataOperator, ListConnectionsOperator
from airflow_provider_cdata.sensors import ConnectionSensor
"""


def dag_source(dag_id: str, tasks: str, params: dict[str, Any] | None = None) -> str:
    """A DAG file: ``tasks`` (one per line) in a DAG that renders native objects."""
    body = "".join(f"    {line}\n" for line in tasks.strip().splitlines())
    return (
        f"{DAG_HEAD}\nwith DAG({dag_id!r}, schedule=None, start_date=datetime(2024, 1, 1), "
        f"render_template_as_native_obj=True, params={params or {}!r}):\n{body}"
    )


def sensor_source(dag_id: str, mode: str, params: dict[str, Any] | None = None, **sensor: Any) -> str:
    arguments = "".join(f", {name}={value!r}" for name, value in sensor.items())
    sensor_mode = "reschedule" if mode == "reschedule" else "poke"
    return dag_source(
        dag_id,
        f"ConnectionSensor(task_id='wait', mode={sensor_mode!r}, deferrable={mode == 'deferrable'}, "
        f"poke_interval=0.3, timeout=15{arguments})",
        params,
    )


# -- defect 1: statuses ----------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("statuses", ["NotAuthenticated", "{{ params.status }}"], ids=["plain", "templated"])
def test_a_single_status_string_is_that_one_status_in_every_mode(
    airflow_conn: CData, run: RunSource, mode: str, statuses: str
) -> None:
    """Before: tuple("NotAuthenticated") was the allow-list ('N', 'o', 't', ...): nothing ever matched."""
    emu = airflow_conn.emulator
    emu.add_connection(airflow_conn.account_id, name="Acme CRM", status="Authenticated")  # not this status
    dag_id = f"defects_single_status_{mode}_{'templated' if '{' in statuses else 'plain'}"
    source = sensor_source(
        dag_id, mode, params={"status": "NotAuthenticated"}, connection_name="Acme CRM", statuses=statuses
    )
    # The customer saves the page without an API key: the emulator's NotAuthenticated connection.
    with customer_after_polls(airflow_conn, 2, name="Acme CRM", api_key="") as outcome:
        result = run(source, dag_id)
    assert result.state == "success"
    assert result.xcom("wait")["id"] == outcome["cdata_connection_id"]
    assert result.xcom("wait")["status"] == "NotAuthenticated"
    assert result.rendered("wait")["statuses"] == "NotAuthenticated"
    if mode == "deferrable":
        assert emu.counters.count("list") >= 2, "the trigger, not only the first poke, asked"


@pytest.mark.parametrize("mode", MODES)
def test_an_empty_statuses_list_fails_the_dag_file_naming_statuses_and_sends_nothing(
    airflow_conn: CData, tmp_path: Path, mode: str
) -> None:
    """Before: [] silently meant "any status": this DAG ran, and the NotAuthenticated connection did."""
    airflow_conn.emulator.add_connection(airflow_conn.account_id, name="Acme CRM", status="NotAuthenticated")
    dag_id = f"defects_empty_statuses_list_{mode}"
    errors = dag_import_errors(
        sensor_source(dag_id, mode, connection_name="Acme CRM", statuses=[]), dag_id, tmp_path / "dags"
    )
    (message,) = errors.values()
    assert "CDataValidationError" in message
    assert "statuses must name at least one status (None accepts any status)" in message
    assert airflow_conn.emulator.counters.count() == 0

    from airflow_provider_cdata.sensors import ConnectionSensor

    with pytest.raises(CDataValidationError) as raised:
        ConnectionSensor(task_id="wait", external_id="x", statuses=())
    assert raised.value.field == "statuses"
    with pytest.raises(CDataValidationError, match="statuses"):
        ConnectionCriteria.build(statuses=[])
    assert ConnectionSensor(task_id="wait", statuses=None).criteria().statuses is None, "None: any status"


@pytest.mark.parametrize("mode", MODES)
def test_a_templated_empty_statuses_list_fails_the_task_and_sends_nothing(
    airflow_conn: CData, run: RunSource, mode: str
) -> None:
    """A templated allow-list is checked once rendered, in every mode: [] fails the task, nothing sent.
    (Before, ``statuses`` was not templated at all: the template text itself was split into letters.)"""
    airflow_conn.emulator.add_connection(airflow_conn.account_id, name="Acme CRM", status="NotAuthenticated")
    dag_id = f"defects_empty_statuses_{mode}"
    source = sensor_source(
        dag_id, mode, params={"statuses": []}, connection_name="Acme CRM", statuses="{{ params.statuses }}"
    )
    result = run(source, dag_id)
    assert result.state == "failed"
    assert airflow_conn.emulator.counters.count() == 0, "refused before any request"


def _trigger(**kwargs: Any) -> Any:
    from airflow_provider_cdata.triggers import ConnectionTrigger

    return ConnectionTrigger(**kwargs)


async def _first_event(trigger: Any) -> dict[str, Any]:
    async for event in trigger.run():
        payload: dict[str, Any] = event.payload
        return payload
    raise AssertionError("the trigger ended without an event")


def _rebuilt(criteria: dict[str, Any]) -> Any:
    """A ConnectionTrigger as a triggerer builds it: from its serialize() output, through JSON."""
    trigger = _trigger(criteria=criteria, poke_interval=0.2, deadline=datetime.now().timestamp() + 10)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_cdata.triggers.ConnectionTrigger"
    return _trigger(**json.loads(json.dumps(kwargs)))


def test_a_trigger_rebuilt_from_serialize_keeps_one_status_and_refuses_an_empty_list(
    airflow_conn: CData,
) -> None:
    emu = airflow_conn.emulator
    emu.add_connection(airflow_conn.account_id, name="Acme CRM", status="Authenticated")
    wanted = emu.add_connection(airflow_conn.account_id, name="Acme CRM", status="Conditional")

    event = asyncio.run(_first_event(_rebuilt({"connection_name": "Acme CRM", "statuses": "Conditional"})))
    assert event["status"] == "success", event
    assert event["connection"]["id"] == wanted["id"]

    before = emu.counters.count()
    event = asyncio.run(_first_event(_rebuilt({"connection_name": "Acme CRM", "statuses": []})))
    assert event["status"] == "error", event
    assert "statuses" in event["message"]
    assert emu.counters.count() == before, "nothing sent"


# -- defect 2: a date alone is midnight UTC -----------------------------------------------------------------
def test_a_date_alone_is_midnight_utc_and_bad_values_still_name_the_field() -> None:
    midnight = datetime(2026, 9, 2, tzinfo=timezone.utc)
    assert parse_time("2026-09-02", "modified_before") == midnight
    assert parse_time(" 2026-09-02 ", "modified_after") == midnight
    assert parse_time(date(2026, 9, 2), "modified_after") == midnight
    assert ConnectionCriteria.build(modified_after="2026-09-02").modified_after == midnight
    for bad in ("2026-13-02", "2026-09-31", "2026-9-2", "02/09/2026"):
        with pytest.raises(CDataValidationError, match="modified_before") as raised:
            parse_time(bad, "modified_before")
        assert raised.value.field == "modified_before"


def _around_midnight(cdata: CData, day: datetime) -> tuple[dict[str, Any], dict[str, Any]]:
    """One connection a second before ``day``'s midnight UTC, one a second after."""
    midnight = day.replace(hour=0, minute=0, second=0, microsecond=0)
    emu = cdata.emulator
    before = emu.add_connection(
        cdata.account_id, name="before", last_modified=(midnight - timedelta(seconds=1)).timestamp()
    )
    after = emu.add_connection(
        cdata.account_id, name="after", last_modified=(midnight + timedelta(seconds=1)).timestamp()
    )
    return before, after


def test_list_connections_takes_the_readmes_ds_add_dates_as_midnight_utc(
    airflow_conn: CData, run: RunSource
) -> None:
    """Before: "{{ macros.ds_add(ds, -90) }}" rendered "2026-09-02" and the task failed (not ISO 8601)."""
    old, recent = _around_midnight(airflow_conn, LOGICAL_DATE - timedelta(days=90))
    source = dag_source(
        "defects_list_plain_dates",
        """
ListConnectionsOperator(task_id="before", modified_before="{{ macros.ds_add(ds, -90) }}")
ListConnectionsOperator(task_id="after", modified_after="{{ macros.ds_add(ds, -90) }}")
""",
    )
    result = run(source, "defects_list_plain_dates", logical_date=LOGICAL_DATE)
    assert result.state == "success"
    assert result.rendered("before")["modified_before"] == "2026-09-02"
    assert [c["id"] for c in result.xcom("before")] == [old["id"]]
    assert [c["id"] for c in result.xcom("after")] == [recent["id"]]


@pytest.mark.parametrize("mode", ["poke", "deferrable"])
def test_the_sensor_takes_a_plain_date_as_midnight_utc(
    airflow_conn: CData, run: RunSource, mode: str
) -> None:
    _around_midnight(airflow_conn, LOGICAL_DATE)
    dag_id = f"defects_sensor_plain_date_{mode}"
    source = sensor_source(dag_id, mode, modified_after="{{ ds }}", statuses=None)
    result = run(source, dag_id, logical_date=LOGICAL_DATE)
    assert result.state == "success"
    assert result.rendered("wait")["modified_after"] == "2026-12-01"
    assert result.xcom("wait")["name"] == "after"


def test_a_bad_date_fails_the_task_before_any_request(airflow_conn: CData, run: RunSource) -> None:
    source = dag_source(
        "defects_list_bad_date", 'ListConnectionsOperator(task_id="list", modified_after="2026-02-30")'
    )
    assert run(source, "defects_list_bad_date").state == "failed"
    assert airflow_conn.emulator.counters.count() == 0


# -- defects 10 and 11: clear-all with a listing CData should never send --------------------------------
class TamperingProxy:
    """A loopback HTTP proxy to the emulator that passes every request on and rewrites the
    ``connections`` of List Connections answers with ``rewrite`` (what a broken CData could send)."""

    def __init__(self, upstream_root: str, rewrite: Callable[[list[dict[str, Any]]], list[Any]]) -> None:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() in ("authorization", "content-type")
                }
                answer = requests.request(
                    self.command,
                    upstream_root + self.path,
                    headers=headers,
                    data=self.rfile.read(length) if length else None,
                    timeout=10,
                )
                body = answer.content
                if self.path.split("?")[0].endswith("/poweredby/connection/list") and answer.ok:
                    listing = answer.json()
                    listing["connections"] = rewrite(listing["connections"])
                    body = json.dumps(listing).encode()
                self.send_response(answer.status_code)
                self.send_header("Content-Type", answer.headers.get("Content-Type", "application/json"))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                proxy.paths.append(f"{self.command} {self.path}")

            do_GET = do_POST = do_DELETE = _forward

            def log_message(self, *args: Any) -> None:
                pass

        self.paths: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/api"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def tamper(airflow_conn: CData, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., TamperingProxy]]:
    """Point ``cdata_default`` at a TamperingProxy in front of the ``cdata`` emulator."""
    proxies: list[TamperingProxy] = []
    root = airflow_conn.base_url.removesuffix("/api")

    def start(rewrite: Callable[[list[dict[str, Any]]], list[Any]]) -> TamperingProxy:
        proxy = TamperingProxy(root, rewrite)
        proxies.append(proxy)
        connection = cdata_connection(airflow_conn, max_retries=0, timeout=5)
        connection["host"] = proxy.api_url
        monkeypatch.setenv("AIRFLOW_CONN_CDATA_DEFAULT", json.dumps(connection))
        return proxy

    yield start
    for proxy in proxies:
        proxy.stop()


def _clear_all(run: RunSource, dag_id: str) -> DagResult:
    return run(dag_source(dag_id, 'ClearMetadataOperator(task_id="clear", max_concurrency=2)'), dag_id)


def _clears(cdata: CData) -> dict[str, int]:
    return {c["id"]: c["metadataClears"] for c in cdata.emulator.connections(cdata.account_id)}


@pytest.mark.parametrize(
    ("odd", "said"),
    [
        (
            {"name": "No id", "dataSource": "Salesforce"},
            "connections[1] ('No id') without a usable id (it has no 'id')",
        ),
        (
            {"id": 12345, "name": "Numeric"},
            "connections[1] ('Numeric') without a usable id (id must be a UUID string, not int)",
        ),
        ({"id": None}, "connections[1] without a usable id (id must be a UUID string, not NoneType)"),
        (
            {"id": "../../account/delete/x", "name": "Path"},
            "connections[1] ('Path') without a usable id (id must be a UUID",
        ),
    ],
    ids=["missing", "number", "null", "malformed"],
)
def test_clear_all_with_a_listed_connection_without_a_usable_id_is_an_api_error_and_clears_nothing(
    airflow_conn: CData, tamper: Callable[..., TamperingProxy], run: RunSource, odd: dict[str, Any], said: str
) -> None:
    """Before: a missing id raised a bare KeyError: 'id'; a bad one was sent on to be cleared while the
    listing's other connections were cleared."""
    from airflow_provider_cdata.operators import ClearMetadataOperator

    first = airflow_conn.emulator.add_connection(airflow_conn.account_id, name="first")
    last = airflow_conn.emulator.add_connection(airflow_conn.account_id, name="last")
    tamper(lambda listed: [listed[0], odd, listed[1]])

    with pytest.raises(CDataAPIError) as raised:
        ClearMetadataOperator(task_id="clear").execute(context={})
    error = raised.value
    assert (error.method, error.route, error.status_code) == ("GET", "/poweredby/connection/list", 200)
    assert said in str(error)
    assert "nothing was done" in str(error)
    assert _clears(airflow_conn) == {first["id"]: 0, last["id"]: 0}
    assert airflow_conn.emulator.counters.count("clear_metadata") == 0

    result = _clear_all(run, "defects_clear_all_unusable_id")
    assert result.state == "failed"
    assert airflow_conn.emulator.counters.count("clear_metadata") == 0


def test_clear_all_clears_a_connection_listed_twice_once(
    airflow_conn: CData, tamper: Callable[..., TamperingProxy], run: RunSource
) -> None:
    """Before: every listed entry was cleared, so a duplicate was cleared twice and was twice in XCom."""
    a = airflow_conn.emulator.add_connection(airflow_conn.account_id, name="a")
    b = airflow_conn.emulator.add_connection(airflow_conn.account_id, name="b")
    c = airflow_conn.emulator.add_connection(airflow_conn.account_id, name="c")
    # b twice, c twice (once with its id upper-cased: the same UUID), order of first appearance kept.
    tamper(
        lambda listed: [
            listed[1],
            listed[0],
            listed[1],
            {**listed[2], "id": listed[2]["id"].upper()},
            listed[2],
        ]
    )

    result = _clear_all(run, "defects_clear_all_duplicates")
    assert result.state == "success"
    assert result.xcom("clear") == [b["id"], a["id"], c["id"]]
    assert _clears(airflow_conn) == {a["id"]: 1, b["id"]: 1, c["id"]: 1}
    assert airflow_conn.emulator.counters.count("clear_metadata") == 3
