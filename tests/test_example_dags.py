"""The example DAGs users copy: they parse cleanly and do their job when Airflow runs them (dag.test())
against the emulator."""

from __future__ import annotations

import sys
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
EXAMPLE_IDS = (
    "cdata_metadata_refresh",
    "cdata_customer_onboarding",
    "cdata_stale_connection_cleanup",
    "cdata_customer_offboarding",
    "cdata_on_connection_ready",
)


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
        "airflow_provider_cdata.triggers",
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


def test_metadata_refresh_covers_every_child_account_by_default(airflow_conn: CData) -> None:
    emu = airflow_conn.emulator
    other = emu.add_account(airflow_conn.parent_id)["id"]
    theirs = emu.add_connection(other)["id"]
    ours = emu.add_connection(airflow_conn.account_id)["id"]

    result = run_dag("cdata_metadata_refresh")

    assert result.state == "success"
    assert result.xcom("child_accounts") == [airflow_conn.account_id, other], "from List Accounts"
    assert result.xcom("clear_metadata", map_index=0) == [ours]
    assert result.xcom("clear_metadata", map_index=1) == [theirs]
    assert emu.counters.count("account_list") == 1

    narrowed = run_dag("cdata_metadata_refresh", {"account_ids": [other]})
    assert narrowed.xcom("clear_metadata", map_index=0) == [theirs]
    assert emu.counters.count("account_list") == 1, "the param narrows it: no listing"


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
def customer_once_the_trigger_polls(cdata: CData, picks: str = "Salesforce") -> Iterator[dict[str, Any]]:
    """The customer opens the link from XCom, and saves once the triggerer is polling for them (on the
    picker page, if the link has no data source, they pick ``picks``)."""
    seen: dict[str, Any] = {}

    def customer() -> None:
        deadline = time.monotonic() + 60
        url = _connect_url_from_xcom("cdata_customer_onboarding", cdata.emulator.root_url, deadline)
        while not _trigger_polls(cdata) and time.monotonic() < deadline:
            time.sleep(0.05)
        seen["trigger_polls_before_save"] = _trigger_polls(cdata)
        seen["url"] = url
        seen["params"] = complete_flow(url, name="Acme Salesforce", data_source=picks)

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
            {"tenant_id": "tenant-42", "tenant_name": "Tenant 42", "data_source": "salesforce"},
        )
    assert result.state == "success"
    account = result.xcom("child_account")
    assert (account["externalId"], account["accountName"]) == ("tenant-42", "Tenant 42"), "created"
    assert customer["trigger_polls_before_save"] >= 1, "the sensor deferred: the triggerer was polling"
    connection = result.xcom("wait_for_connection")
    assert connection["id"] == customer["params"]["cdata_connection_id"]
    assert connection["externalId"] == f"onboarding-{result.run_id}"
    assert result.xcom("refresh_metadata") == [connection["id"]]
    stored = airflow_conn.emulator.connection(connection["id"])
    assert stored is not None
    assert (stored["accountId"], stored["dataSource"]) == (account["id"], "Salesforce"), "in the new account"
    assert airflow_conn.emulator.connection(connection["id"])["metadataClears"] == 1  # type: ignore[index]
    assert result.xcom("report") == connection
    assert result.xcom("create_connect_link") == customer["url"], "the app reads the link from XCom"

    token = parse_qs(urlsplit(customer["url"]).query)["token"][0]
    output = capfd.readouterr()
    logs = output.out + output.err
    assert "Connect link for the customer" in logs
    assert token not in logs, "the connect-URL token is masked in the logs"


def test_customer_onboarding_without_a_data_source_lets_the_customer_pick_one(
    airflow_conn: CData, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CDATA_ONBOARDING_POKE_SECONDS", "0.2")
    init_airflow_db()
    with customer_once_the_trigger_polls(airflow_conn, picks="MailChimp") as customer:
        result = run_dag("cdata_customer_onboarding", {"tenant_id": "tenant-7", "data_source": None})
    assert result.state == "success"
    (create,) = airflow_conn.emulator.requests("create")
    assert "dataSource" not in create.body, "the link is CData's picker"
    assert airflow_conn.emulator.requests("sources") == [], "no data source to check"
    connection = result.xcom("wait_for_connection")
    assert connection["id"] == customer["params"]["cdata_connection_id"]
    assert connection["dataSource"] == "MailChimp", "what the customer picked"
    assert connection["externalId"] == f"onboarding-{result.run_id}"
    assert result.xcom("refresh_metadata") == [connection["id"]]


def test_customer_onboarding_reuses_the_tenants_account_and_refuses_an_unknown_data_source(
    airflow_conn: CData,
) -> None:
    result = run_dag("cdata_customer_onboarding", {"tenant_id": "customer-1", "data_source": "Salesfroce"})
    assert result.state == "failed"
    states = result.task_states()
    assert (states["child_account"], states["create_connect_link"]) == ("success", "failed")
    assert result.xcom("child_account")["id"] == airflow_conn.account_id, "the existing account"
    assert airflow_conn.emulator.counters.count("account_create") == 0
    assert airflow_conn.emulator.counters.count("create") == 0, "no link minted for an unknown source"


# -- stale connection cleanup -----------------------------------------------------------------------
def _stale_and_fresh(cdata: CData) -> tuple[list[str], str]:
    long_ago = (datetime.now(timezone.utc) - timedelta(days=120)).timestamp()
    stale = [cdata.emulator.add_connection(cdata.account_id, last_modified=long_ago)["id"] for _ in range(2)]
    return stale, cdata.emulator.add_connection(cdata.account_id)["id"]


CLEANUP = "cdata_stale_connection_cleanup"
# A real run with approval on waits for a person (tests/e2e answers it through the REST API);
# these runs go around the approval step.
NO_APPROVAL = {"require_approval": False}


def test_stale_cleanup_is_a_dry_run_by_default_and_asks_no_one(airflow_conn: CData) -> None:
    stale, _ = _stale_and_fresh(airflow_conn)
    result = run_dag(CLEANUP)
    assert result.state == "success"
    assert [c["id"] for c in result.xcom("find_stale_connections")] == stale
    assert result.xcom("delete_stale_connections") == []
    assert result.task_states()["approve_deletion"] == "skipped", "a dry run needs no approval"
    assert airflow_conn.emulator.counters.count("delete") == 0
    assert len(airflow_conn.emulator.connections()) == 3


def test_stale_cleanup_deletes_only_stale_connections_when_asked(airflow_conn: CData) -> None:
    stale, fresh = _stale_and_fresh(airflow_conn)
    result = run_dag(CLEANUP, {"dry_run": False, "stale_after_days": 30, **NO_APPROVAL})
    assert result.state == "success"
    assert result.task_states()["approve_deletion"] == "skipped"
    assert result.xcom("delete_stale_connections") == stale
    assert result.xcom("delete_stale_connections", key="skipped") == []
    assert [c["id"] for c in airflow_conn.emulator.connections()] == [fresh]
    assert result.rendered("delete_stale_connections")["is_dry_run"] is False


def test_stale_cleanup_refuses_more_than_max_deletions_without_asking(airflow_conn: CData) -> None:
    _stale_and_fresh(airflow_conn)
    # Approval is on: the run does not wait for a person, as the delete would refuse anyway.
    result = run_dag(CLEANUP, {"dry_run": False, "max_deletions": 1})
    assert result.state == "failed"
    states = result.task_states()
    assert (states["approve_deletion"], states["delete_stale_connections"]) == ("skipped", "failed")
    assert airflow_conn.emulator.counters.count("delete") == 0
    assert len(airflow_conn.emulator.connections()) == 3


def test_stale_cleanup_puts_airflows_approval_operator_between_listing_and_deleting() -> None:
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    from tests.dag_runner import get_dag

    dag = get_dag(CLEANUP)
    approve = dag.get_task("approve_deletion")
    assert type(approve) is ApprovalOperator
    assert approve.upstream_task_ids == {"ask_for_approval"}
    assert dag.get_task("ask_for_approval").upstream_task_ids == {"find_stale_connections"}
    assert dag.get_task("delete_stale_connections").upstream_task_ids == {
        "find_stale_connections",
        "approve_deletion",
        "no_approval_needed",
    }
    assert (approve.defaults, approve.response_timeout) == (["Reject"], timedelta(days=3))
    assert dag.params["require_approval"] is True


def test_stale_cleanup_without_human_in_the_loop_operators_fails_to_parse_saying_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An Airflow whose standard provider has no HITL module (no server can play that: the module is
    made unimportable here). The DAG file must not parse into a DAG that deletes without asking."""
    from airflow_provider_cdata._compat import HITL_MODULE, dag_bag

    init_airflow_db()
    monkeypatch.setitem(sys.modules, HITL_MODULE, None)
    bag = dag_bag(str(EXAMPLES))
    assert CLEANUP not in bag.dag_ids
    (error,) = [text for path, text in bag.import_errors.items() if path.endswith(f"{CLEANUP}.py")]
    assert "ApprovalUnavailableError" in error
    assert f"human-in-the-loop ApprovalOperator ({HITL_MODULE}), and this Airflow has none" in error
    assert "REQUIRE_APPROVAL = False" in error
    assert "cdata_metadata_refresh" in bag.dag_ids, "the other examples are not affected"


# -- customer offboarding ---------------------------------------------------------------------------
OFFBOARDING = "cdata_customer_offboarding"


def _leaving_tenant(cdata: CData) -> tuple[str, list[str]]:
    account = cdata.emulator.add_account(cdata.parent_id, external_id="leaving")["id"]
    return account, [cdata.emulator.add_connection(account)["id"] for _ in range(2)]


def test_offboarding_is_a_dry_run_by_default(airflow_conn: CData) -> None:
    account, connections = _leaving_tenant(airflow_conn)
    result = run_dag(OFFBOARDING, {"tenant_id": "leaving"})
    assert result.state == "success"
    assert [c["id"] for c in result.xcom("list_connections")] == connections
    states = result.task_states()
    assert (states["approve_offboarding"], states["delete_account"]) == ("skipped", "success")
    assert airflow_conn.emulator.counters.count("delete") == 0
    assert airflow_conn.emulator.counters.count("account_delete") == 0
    assert len(airflow_conn.emulator.connections(account)) == 2


def test_offboarding_deletes_the_connections_then_the_account(airflow_conn: CData) -> None:
    account, connections = _leaving_tenant(airflow_conn)
    result = run_dag(OFFBOARDING, {"tenant_id": "leaving", "dry_run": False, **NO_APPROVAL})
    assert result.state == "success"
    assert result.xcom("delete_connections") == connections
    assert result.xcom("delete_account") == [account]
    routes = [r.route for r in airflow_conn.emulator.requests() if r.route in ("delete", "account_delete")]
    assert routes == ["delete", "delete", "account_delete"]
    assert airflow_conn.emulator.store.find_account(airflow_conn.parent_id, account) is None
    assert airflow_conn.emulator.store.find_account(airflow_conn.parent_id, airflow_conn.account_id)


def test_offboarding_an_unknown_tenant_fails_and_deletes_nothing(airflow_conn: CData) -> None:
    result = run_dag(OFFBOARDING, {"tenant_id": "never-onboarded", "dry_run": False, **NO_APPROVAL})
    assert result.state == "failed"
    assert result.task_states()["find_account"] == "failed"
    assert airflow_conn.emulator.counters.count("account_delete") == 0


# -- on connection ready (asset watcher) -------------------------------------------------------------
def test_on_connection_ready_is_scheduled_on_an_asset_watched_by_the_event_trigger() -> None:
    from airflow_provider_cdata._compat import dag_bag
    from airflow_provider_cdata.triggers import ConnectionEventTrigger

    init_airflow_db()
    dag = dag_bag(str(EXAMPLES)).get_dag("cdata_on_connection_ready")
    [asset] = dag.timetable.asset_condition.objects
    [watcher] = asset.watchers
    assert isinstance(watcher.trigger, ConnectionEventTrigger)
    assert watcher.trigger.serialize()[1]["all_accounts"] is True


def test_on_connection_ready_clears_the_connection_and_reports_it_idempotently(airflow_conn: CData) -> None:
    """dag.test() cannot hand a run a triggering asset event (the e2e suite runs the real watcher), so
    the run names the connection in its conf, the DAG's documented manual path."""
    emu = airflow_conn.emulator
    connection = emu.add_connection(airflow_conn.account_id, status="Authenticated")
    conf = {"connection_id": connection["id"], "account_id": airflow_conn.account_id}
    for clears in (1, 2):  # the same connection twice: cleared twice, nothing else
        result = run_dag("cdata_on_connection_ready", conf)
        assert result.state == "success"
        assert result.xcom("refresh_ready_connections") == [
            {
                "connection_id": connection["id"],
                "account_id": airflow_conn.account_id,
                "change": "manual",
                "data_source": None,
            }
        ]
        assert [c["metadataClears"] for c in emu.connections()] == [clears]
