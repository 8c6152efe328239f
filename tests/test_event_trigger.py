"""Issue 12, part 1: ConnectionEventTrigger (an asset watcher's trigger), its run() over real HTTP
against the emulator on loopback: the baseline, created / changed / status-changed events, once per
state, every-account mode, the data-source filter, and restarts with an asset state store.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest

from airflow_provider_cdata.exceptions import CDataValidationError
from airflow_provider_cdata.hooks import RetryPolicy
from airflow_provider_cdata.triggers import ConnectionEventTrigger
from tests.conftest import CData
from tests.test_sensor import _connection_env
from tests.test_shared_poll import run_loop

POLL = 1.0  # the smallest interval the trigger accepts


@pytest.fixture
def env(cdata: CData, monkeypatch: pytest.MonkeyPatch, fast_retries: RetryPolicy) -> CData:
    _connection_env(monkeypatch, cdata)
    return cdata


class DictStore:
    """Stands in for Airflow 3.3's per-asset accessor (``aget`` / ``aset`` of JSON values), which only a
    triggerer's supervisor can serve; the e2e suite runs the real one. Values go through JSON, as there."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.writes = 0

    async def aget(self, key: str, default: Any = None) -> Any:
        return json.loads(self.values[key]) if key in self.values else default

    async def aset(self, key: str, value: Any) -> None:
        self.writes += 1
        self.values[key] = json.dumps(value)


class Watching:
    """A trigger's run() on the loop, its events gathered as they come."""

    def __init__(self, trigger: ConnectionEventTrigger) -> None:
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._run: AsyncIterator[Any] = trigger.run()
        self._task = asyncio.ensure_future(self._pump())

    async def _pump(self) -> None:
        async for event in self._run:
            await self.events.put(event.payload)

    async def next(self, timeout: float = 4 * POLL) -> dict[str, Any]:
        return await asyncio.wait_for(self.events.get(), timeout)

    async def none_for(self, seconds: float = 2.5 * POLL) -> None:
        await asyncio.sleep(seconds)
        assert self.events.empty(), f"unexpected event {self.events.get_nowait()}"

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.wait({self._task})
        aclose: Callable[[], Coroutine[Any, Any, None]] = self._run.aclose  # type: ignore[attr-defined]
        await aclose()


def watcher(store: DictStore | None = None, **kwargs: Any) -> ConnectionEventTrigger:
    trigger = ConnectionEventTrigger(poll_interval=POLL, **kwargs)
    trigger.asset_state_store = store  # type: ignore[assignment]  # what the 3.3 triggerer injects
    return trigger


def test_the_baseline_is_no_event_and_a_new_ready_connection_is_one(env: CData) -> None:
    emu = env.emulator
    existing = emu.add_connection(env.account_id, status="Authenticated")

    async def main() -> dict[str, Any]:
        watching = Watching(watcher())
        await watching.none_for()  # the existing connection is the baseline
        made = emu.add_connection(env.account_id, external_id="customer-9", status="Authenticated")
        event = await watching.next()
        await watching.none_for()  # and only once
        await watching.stop()
        assert event["connection"]["id"] == made["id"]
        return event

    event = run_loop(main())
    assert event["change"] == "created"
    assert event["account_id"] == env.account_id
    assert event["connection"]["id"] != existing["id"]
    json.dumps(event)  # plain JSON, as an asset event's extra must be


def test_a_change_of_lastmodified_or_status_is_one_event_each_state_once(env: CData) -> None:
    emu = env.emulator
    connection = emu.add_connection(env.account_id, status="Authenticated")

    async def main() -> list[dict[str, Any]]:
        watching = Watching(watcher())
        await watching.none_for()
        emu.store.update_connection(connection["id"], name="renamed")  # a save: lastModified moves
        changed = await watching.next()
        emu.set_status(connection["id"], "Failed")  # no longer accepted: no event
        await watching.none_for()
        emu.set_status(connection["id"], "Authenticated")  # the state that fired already
        await watching.none_for()
        await watching.stop()
        return [changed]

    [changed] = run_loop(main())
    assert changed["change"] == "changed"
    assert changed["connection"]["name"] == "renamed"


def test_a_status_change_to_an_accepted_status_is_an_event(env: CData) -> None:
    emu = env.emulator
    connection = emu.add_connection(env.account_id, status="NotAuthenticated")

    async def main() -> dict[str, Any]:
        watching = Watching(watcher(statuses=["Authenticated", "Conditional"]))
        await watching.none_for()
        emu.set_status(connection["id"], "Conditional")  # lastModified kept, status changed
        event = await watching.next()
        await watching.stop()
        return event

    event = run_loop(main())
    assert (event["connection"]["id"], event["connection"]["status"]) == (connection["id"], "Conditional")
    assert event["change"] == "changed"


def test_every_account_mode_and_the_data_source_filter(env: CData) -> None:
    emu = env.emulator
    other = emu.add_account(env.parent_id)["id"]

    async def main() -> list[dict[str, Any]]:
        watching = Watching(watcher(all_accounts=True, data_source="Salesforce"))
        await watching.none_for()
        emu.add_connection(other, data_source="HubSpot", status="Authenticated")  # filtered out
        mine = emu.add_connection(other, data_source="Salesforce", status="Authenticated")
        event = await watching.next()
        later = emu.add_account(env.parent_id)["id"]  # joined on the next poll, its first poll no baseline
        theirs = emu.add_connection(later, data_source="Salesforce", status="Authenticated")
        second = await watching.next()
        await watching.none_for()
        await watching.stop()
        assert (event["connection"]["id"], event["account_id"]) == (mine["id"], other)
        assert (second["connection"]["id"], second["account_id"]) == (theirs["id"], later)
        return [event, second]

    events = run_loop(main())
    assert {e["connection"]["dataSource"] for e in events} == {"Salesforce"}


def test_a_restart_with_the_state_store_delivers_what_became_ready_meanwhile(env: CData) -> None:
    emu = env.emulator
    store = DictStore()
    emu.add_connection(env.account_id, status="Authenticated")

    async def main() -> dict[str, Any]:
        first = Watching(watcher(store))
        await first.none_for()  # baseline, written to the store one poll behind
        await first.stop()  # the triggerer goes away
        assert store.writes >= 1
        meanwhile = emu.add_connection(env.account_id, status="Authenticated")
        second = Watching(watcher(store))  # another triggerer, same asset
        event = await second.next()
        await second.none_for()
        await second.stop()
        assert event["connection"]["id"] == meanwhile["id"]
        return event

    assert run_loop(main())["change"] == "created"


class BrokenStore(DictStore):
    async def aget(self, key: str, default: Any = None) -> Any:
        raise RuntimeError("the metadata database is away")

    async def aset(self, key: str, value: Any) -> None:
        self.writes += 1
        raise RuntimeError("the metadata database is away")


def test_the_store_is_written_only_when_the_ready_states_change(env: CData) -> None:
    emu = env.emulator
    store = DictStore()

    async def main() -> None:
        watching = Watching(watcher(store))
        await watching.none_for(3.5 * POLL)  # baseline + idle polls: one write (the empty baseline)
        assert store.writes == 1, store.writes
        made = emu.add_connection(env.account_id, status="Authenticated")
        assert (await watching.next())["connection"]["id"] == made["id"]
        await watching.none_for(2.5 * POLL)  # written one poll after the event, then no more
        assert store.writes == 2, store.writes
        await watching.stop()
        [saved] = [json.loads(v) for v in store.values.values()]
        assert list(saved) == [made["id"]]

    run_loop(main())


def test_a_failing_state_store_never_stops_the_watcher(env: CData) -> None:
    emu = env.emulator
    store = BrokenStore()

    async def main() -> None:
        watching = Watching(watcher(store))
        await watching.none_for()  # read failed: a baseline, as without a store
        made = emu.add_connection(env.account_id, status="Authenticated")
        assert (await watching.next())["connection"]["id"] == made["id"]
        await watching.none_for()
        await watching.stop()
        assert store.writes >= 1  # tried, failed, logged

    run_loop(main())


def test_without_a_state_store_a_restart_takes_a_fresh_baseline(env: CData) -> None:
    """Airflow 3.1/3.2 (no asset_state_store): documented, what became ready meanwhile is not delivered."""
    emu = env.emulator

    async def main() -> None:
        first = Watching(watcher(None))
        await first.none_for()
        await first.stop()
        emu.add_connection(env.account_id, status="Authenticated")
        second = Watching(watcher(None))
        await second.none_for()
        await second.stop()

    run_loop(main())


def test_a_failed_poll_is_logged_and_the_watcher_goes_on(
    cdata: CData,
    monkeypatch: pytest.MonkeyPatch,
    fast_retries: RetryPolicy,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A 503 (no retries in the hook) while watching: logged with CData's status, then the connection
    made during the outage is delivered by the next good poll; the watcher never ends itself."""
    _connection_env(monkeypatch, cdata, max_retries=0)
    emu = cdata.emulator

    async def main() -> dict[str, Any]:
        watching = Watching(watcher())
        await watching.none_for(1.5 * POLL)  # the baseline
        emu.inject("status", status=503, route="list", times=1)
        made = emu.add_connection(cdata.account_id, status="Authenticated")
        event = await watching.next(timeout=6 * POLL)
        await watching.stop()
        assert event["connection"]["id"] == made["id"]
        return event

    run_loop(main())
    assert emu.counters.faults == {"status": 1}
    output = capfd.readouterr()
    lines = (output.out + output.err).splitlines()
    failed = [line for line in lines if "Listing CData connections failed" in line]
    assert len(failed) == 1, failed
    assert "HTTP 503" in failed[0]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"poll_interval": 0.5}, "poll_interval"),
        ({"poll_interval": True}, "poll_interval"),
        ({"statuses": []}, "statuses"),
        ({"data_source": ""}, "data_source"),
        ({"all_accounts": True, "account_id": "x"}, "all_accounts"),
    ],
)
def test_bad_arguments_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(CDataValidationError) as caught:
        ConnectionEventTrigger(**kwargs)
    assert caught.value.field == field


def test_serialize_round_trips_and_names_the_public_classpath() -> None:
    trigger = ConnectionEventTrigger(all_accounts=True, data_source="Salesforce", poll_interval=5)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_cdata.triggers.ConnectionEventTrigger"
    assert ConnectionEventTrigger(**kwargs).serialize() == (classpath, kwargs)
    json.dumps(kwargs)
    # One status is one status (never its letters); None accepts any.
    assert ConnectionEventTrigger(statuses="Conditional").statuses == ["Conditional"]
    assert ConnectionEventTrigger(statuses=None).serialize()[1]["statuses"] is None
