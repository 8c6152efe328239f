"""The example DAGs users copy: they parse cleanly and do their job when Airflow runs them (dag.test())
against the emulator."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from airflow_provider_cdata.emulator import complete_flow
from tests.conftest import REPO, CData
from tests.dag_runner import init_airflow_db, run_dag

EXAMPLES = REPO / "dags_examples"
EXAMPLE_IDS = ("cdata_metadata_refresh", "cdata_customer_onboarding", "cdata_stale_connection_cleanup")


def test_example_dags_parse_without_errors_and_document_themselves() -> None:
    from airflow_provider_cdata._compat import dag_bag

    init_airflow_db()
    bag = dag_bag(str(EXAMPLES))
    assert bag.import_errors == {}
    assert sorted(bag.dag_ids) == sorted(EXAMPLE_IDS)
    for dag_id in EXAMPLE_IDS:
        dag = bag.get_dag(dag_id)
        assert dag is not None
        assert len(dag.doc_md or "") > 300, f"{dag_id} needs a docstring a user can follow"
        assert "example" in dag.tags


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.py")), ids=lambda p: p.name)
def test_example_dags_use_only_public_names(path: Path) -> None:
    source = path.read_text()
    imports = [
        line
        for line in source.splitlines()
        if line.startswith(("from airflow_provider_cdata", "import airflow_provider_cdata"))
    ]
    allowed = (
        "airflow_provider_cdata.operators",
        "airflow_provider_cdata.sensors",
        "airflow_provider_cdata.hooks",
    )
    assert imports
    assert all(line.split()[1] in allowed for line in imports), imports
    assert "._" not in "".join(imports)


# -- metadata refresh -------------------------------------------------------------------------------
def test_metadata_refresh_clears_every_connection_of_each_account(airflow_conn: CData) -> None:
    emu = airflow_conn.emulator
    second = emu.add_account(airflow_conn.parent_id)["id"]
    first_ids = [emu.add_connection(airflow_conn.account_id)["id"] for _ in range(3)]
    second_ids = [emu.add_connection(second)["id"] for _ in range(2)]
    result = run_dag("cdata_metadata_refresh", {"account_ids": [airflow_conn.account_id, second]})
    assert result.state == "success"
    assert result.task_states() == {
        "child_accounts": "success",
        "clear_metadata[0]": "success",
        "clear_metadata[1]": "success",
    }
    assert sorted(result.xcom("clear_metadata", map_index=0)) == sorted(first_ids)
    assert sorted(result.xcom("clear_metadata", map_index=1)) == sorted(second_ids)
    assert all(c["metadataClears"] == 1 for c in emu.connections())
    assert emu.counters.count("clear_metadata", 200) == 5


def test_metadata_refresh_reads_the_accounts_variable_or_falls_back_to_the_connection(
    airflow_conn: CData, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = airflow_conn.emulator
    other = emu.add_account(airflow_conn.parent_id)["id"]
    theirs = emu.add_connection(other)["id"]
    ours = emu.add_connection(airflow_conn.account_id)["id"]
    monkeypatch.setenv("AIRFLOW_VAR_CDATA_ACCOUNT_IDS", json.dumps([other]))
    from_variable = run_dag("cdata_metadata_refresh")
    assert from_variable.xcom("clear_metadata", map_index=0) == [theirs]

    monkeypatch.delenv("AIRFLOW_VAR_CDATA_ACCOUNT_IDS")
    from_connection = run_dag("cdata_metadata_refresh")
    assert from_connection.xcom("clear_metadata", map_index=0) == [ours]


# -- customer onboarding ------------------------------------------------------------------------------
def _connect_url_from_xcom(dag_id: str, emulator_root: str, deadline: float) -> str:
    """What the product's app does: read the connect link from the run's XCom (this test's run: the
    session's database also holds links of earlier tests, to their own emulators)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    while time.monotonic() < deadline:
        with create_session() as session:
            rows = (
                session.query(XComModel)
                .filter_by(dag_id=dag_id, task_id="create_connect_link", key="return_value")
                .all()
            )
            ours = [str(r.value) for r in rows if str(r.value).startswith(f"{emulator_root}/")]
            if ours:
                return ours[-1]
        time.sleep(0.05)
    raise AssertionError("no connect link in XCom")


@contextmanager
def customer_once_the_trigger_polls(cdata: CData) -> Iterator[dict[str, Any]]:
    """The customer opens the link from XCom, and saves once the triggerer is polling for them."""
    seen: dict[str, Any] = {}

    def customer() -> None:
        deadline = time.monotonic() + 60
        url = _connect_url_from_xcom("cdata_customer_onboarding", cdata.emulator.root_url, deadline)
        while not _trigger_polls(cdata) and time.monotonic() < deadline:
            time.sleep(0.05)
        seen["trigger_polls_before_save"] = _trigger_polls(cdata)
        seen["url"] = url
        seen["params"] = complete_flow(url, name="Acme Salesforce")

    thread = threading.Thread(target=customer, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        thread.join(timeout=60)


def _trigger_polls(cdata: CData) -> int:
    return sum(1 for r in cdata.emulator.requests("list") if "aiohttp" in r.user_agent)


def test_customer_onboarding_waits_deferred_for_the_customer_then_refreshes(
    airflow_conn: CData, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CDATA_ONBOARDING_POKE_SECONDS", "0.2")
    init_airflow_db()
    with customer_once_the_trigger_polls(airflow_conn) as customer:
        result = run_dag(
            "cdata_customer_onboarding",
            {"account_id": airflow_conn.account_id, "data_source": "Salesforce"},
        )
    assert result.state == "success"
    assert customer["trigger_polls_before_save"] >= 1, "the sensor deferred: the triggerer was polling"
    connection = result.xcom("wait_for_connection")
    assert connection["id"] == customer["params"]["cdata_connection_id"]
    assert connection["externalId"] == f"onboarding-{result.run_id}"
    assert result.xcom("refresh_metadata") == [connection["id"]]
    assert airflow_conn.emulator.connection(connection["id"])["metadataClears"] == 1  # type: ignore[index]
    assert result.xcom("report") == connection
    assert result.xcom("create_connect_link") == customer["url"], "the app reads the link from XCom"

    token = parse_qs(urlsplit(customer["url"]).query)["token"][0]
    output = capfd.readouterr()
    logs = output.out + output.err
    assert "Connect link for the customer" in logs
    assert token not in logs, "the connect-URL token is masked in the logs"


# -- stale connection cleanup -----------------------------------------------------------------------
def _stale_and_fresh(cdata: CData) -> tuple[list[str], str]:
    long_ago = (datetime.now(timezone.utc) - timedelta(days=120)).timestamp()
    stale = [cdata.emulator.add_connection(cdata.account_id, last_modified=long_ago)["id"] for _ in range(2)]
    return stale, cdata.emulator.add_connection(cdata.account_id)["id"]


def test_stale_cleanup_is_a_dry_run_by_default(airflow_conn: CData) -> None:
    stale, _ = _stale_and_fresh(airflow_conn)
    result = run_dag("cdata_stale_connection_cleanup")
    assert result.state == "success"
    assert [c["id"] for c in result.xcom("find_stale_connections")] == stale
    assert result.xcom("delete_stale_connections") == []
    assert airflow_conn.emulator.counters.count("delete") == 0
    assert len(airflow_conn.emulator.connections()) == 3


def test_stale_cleanup_deletes_only_stale_connections_when_asked(airflow_conn: CData) -> None:
    stale, fresh = _stale_and_fresh(airflow_conn)
    result = run_dag("cdata_stale_connection_cleanup", {"dry_run": False, "stale_after_days": 30})
    assert result.state == "success"
    assert result.xcom("delete_stale_connections") == stale
    assert [c["id"] for c in airflow_conn.emulator.connections()] == [fresh]
    assert result.rendered("delete_stale_connections")["is_dry_run"] is False


def test_stale_cleanup_refuses_more_than_max_deletions(airflow_conn: CData) -> None:
    _stale_and_fresh(airflow_conn)
    result = run_dag("cdata_stale_connection_cleanup", {"dry_run": False, "max_deletions": 1})
    assert result.state == "failed"
    assert result.task_states()["delete_stale_connections"] == "failed"
    assert airflow_conn.emulator.counters.count("delete") == 0
    assert len(airflow_conn.emulator.connections()) == 3
