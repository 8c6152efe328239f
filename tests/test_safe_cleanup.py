"""Safe cleanup: DeleteConnectionOperator, given connections as ListConnectionsOperator returned them,
lists again right before deleting and skips every connection changed (or gone) since it was listed.

Each run is Airflow's own dag.test() against the emulator over HTTP; the customer re-authenticates on
the emulator's connect page (its Edit link, saved), which is what gives a connection a new lastModified.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from tests.conftest import CData
from tests.dag_runner import run_dag


def _stale(cdata: CData, count: int) -> list[dict[str, Any]]:
    long_ago = (datetime.now(timezone.utc) - timedelta(days=120)).timestamp()
    return [
        cdata.emulator.add_connection(cdata.account_id, name=f"stale {i}", last_modified=long_ago)
        for i in range(count)
    ]


def _deleted_ids(cdata: CData) -> list[str]:
    return [record.path.rsplit("/", 1)[-1] for record in cdata.emulator.requests("delete")]


def test_a_connection_reauthenticated_between_list_and_delete_is_skipped(
    airflow_conn: CData, capfd: pytest.CaptureFixture[str]
) -> None:
    first, *others = (c["id"] for c in _stale(airflow_conn, 3))

    result = run_dag("cdata_test_list_reauthenticate_delete")

    assert result.state == "success"
    assert result.xcom("customer_reauthenticates") == first
    assert result.xcom("delete") == others
    assert result.xcom("delete", key="skipped") == [first]
    assert _deleted_ids(airflow_conn) == others, "no delete was sent for the re-authenticated one"
    assert [c["id"] for c in airflow_conn.emulator.connections()] == [first]
    # One listing by the list task, one by the delete task right before deleting.
    assert airflow_conn.emulator.counters.count("list") == 2
    logs = capfd.readouterr()
    assert f"Skipping connection {first}: modified since it was listed" in logs.out + logs.err


def test_an_earlier_listing_given_as_a_list_skips_what_changed_or_went_since(airflow_conn: CData) -> None:
    connections = _stale(airflow_conn, 4)
    listing = run_dag("cdata_test_list").xcom("list")
    assert [c["id"] for c in listing] == [c["id"] for c in connections]
    edited, gone, refused, removed = (c["id"] for c in connections)
    before = airflow_conn.emulator.connection(edited)
    assert airflow_conn.reauthenticate(edited)["lastModified"] != before["lastModified"]  # type: ignore[index]
    airflow_conn.emulator.store.delete_connection(airflow_conn.account_id, gone)
    airflow_conn.emulator.reset_counters()
    # The first delete (of `refused`) fails: collected as before, the skipped ids still reported.
    airflow_conn.emulator.inject("status", status=403, route="delete", times=1)

    result = run_dag("cdata_test_delete", {"ids": [*listing[2:], *listing[:2]]})

    assert result.state == "failed"
    assert result.xcom("delete", key="skipped") == [edited, gone]
    assert result.xcom("delete", key="deleted") == [removed]
    assert _deleted_ids(airflow_conn) == [refused, removed], "nothing sent for the edited or the gone one"
    assert {c["id"] for c in airflow_conn.emulator.connections()} == {edited, refused}


def test_a_dry_run_given_a_listing_reports_what_it_would_skip(airflow_conn: CData) -> None:
    connections = _stale(airflow_conn, 2)
    listing = run_dag("cdata_test_list").xcom("list")
    airflow_conn.reauthenticate(connections[1]["id"])

    result = run_dag("cdata_test_delete_dry_run", {"ids": listing})

    assert result.state == "success"
    assert result.xcom("delete") == []
    assert result.xcom("delete", key="skipped") == [connections[1]["id"]]
    assert airflow_conn.emulator.counters.count("delete") == 0
    assert len(airflow_conn.emulator.connections()) == 2


def test_plain_ids_are_deleted_as_given_without_a_second_listing(airflow_conn: CData) -> None:
    connections = _stale(airflow_conn, 2)
    airflow_conn.reauthenticate(connections[0]["id"])
    ids = [c["id"] for c in connections]
    # A dict with an id alone says nothing about the version listed either.
    result = run_dag("cdata_test_delete", {"ids": [ids[0], {"id": ids[1]}]})

    assert result.state == "success"
    assert result.xcom("delete") == ids
    assert airflow_conn.emulator.counters.count("list") == 0
    with pytest.raises(KeyError):
        result.xcom("delete", key="skipped")
    assert airflow_conn.emulator.connections() == []


def test_an_unchanged_listing_is_deleted_whole_and_nothing_is_skipped(airflow_conn: CData) -> None:
    connections = _stale(airflow_conn, 2)
    listing = run_dag("cdata_test_list").xcom("list")

    result = run_dag("cdata_test_delete", {"ids": listing})

    assert result.state == "success"
    assert result.xcom("delete") == [c["id"] for c in connections]
    assert result.xcom("delete", key="skipped") == []
    assert airflow_conn.emulator.connections() == []


def test_max_deletions_refuses_before_the_second_listing(airflow_conn: CData) -> None:
    _stale(airflow_conn, 3)
    listing = run_dag("cdata_test_list").xcom("list")
    airflow_conn.emulator.reset_counters()

    result = run_dag("cdata_test_delete_capped", {"ids": listing})

    assert result.state == "failed"
    assert airflow_conn.emulator.counters.count() == 0, "refused before any request"
    assert len(airflow_conn.emulator.connections()) == 3
