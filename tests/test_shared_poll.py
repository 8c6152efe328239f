"""Issue 12, part 2: every ConnectionTrigger waiting on one (Airflow connection, child account) in one
event loop shares one List Connections call per interval (airflow_provider_cdata/polling.py).

Many triggers run concurrently on one loop through their own ``run()``, as in a triggerer, against
the emulator over loopback; calls are counted at the emulator.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
import uuid
from collections import Counter
from collections.abc import Coroutine
from contextlib import aclosing
from typing import Any

import pytest

from airflow_provider_cdata.hooks import RetryPolicy
from tests.conftest import CData
from tests.test_sensor import _connection_env
from tests.test_trigger_deadline import LoopReport, run_on_a_fresh_loop

INTERVAL = 0.3


def trigger(
    external_id: str, deadline: float, account_id: str | None = None, interval: float = INTERVAL
) -> Any:
    from airflow_provider_cdata.triggers import ConnectionTrigger

    return ConnectionTrigger(
        criteria={"external_id": external_id},
        poke_interval=interval,
        deadline=deadline,
        account_id=account_id,
    )


async def first_event(trigger: Any) -> dict[str, Any]:
    async for event in trigger.run():
        payload: dict[str, Any] = event.payload
        return payload
    raise AssertionError("the trigger ended without an event")


def run_loop(main: Coroutine[Any, Any, Any]) -> Any:
    """``main``'s result on a fresh loop, which must be left with no task and nothing reported."""
    result, report = run_on_a_fresh_loop(main)
    assert report == LoopReport(), report
    return result


def list_calls_per_account(cdata: CData) -> Counter[str]:
    return Counter(str((r.claims or {}).get("sub")) for r in cdata.emulator.requests("list"))


def at_most(elapsed: float, interval: float = INTERVAL) -> int:
    return math.ceil(elapsed / interval) + 1


@pytest.fixture
def env(cdata: CData, monkeypatch: pytest.MonkeyPatch, fast_retries: RetryPolicy) -> CData:
    _connection_env(monkeypatch, cdata)
    return cdata


def test_many_triggers_on_one_account_make_one_call_per_interval(env: CData) -> None:
    async def main() -> tuple[list[dict[str, Any]], float]:
        started = time.monotonic()
        deadline = time.time() + 2.0
        events = await asyncio.gather(*(first_event(trigger(f"never-{i}", deadline)) for i in range(50)))
        return events, time.monotonic() - started

    events, elapsed = run_loop(main())
    assert [e["status"] for e in events] == ["timeout"] * 50
    calls = env.emulator.counters.count("list")
    # Polling on its own, each trigger would make ~7 calls in 2 s: 350.
    assert 2 <= calls <= at_most(elapsed), f"{calls} List Connections in {elapsed:.1f} s"
    assert all(not r.query for r in env.emulator.requests("list")), "one listing serves every criterion"


def test_triggers_over_several_accounts_poll_each_account_separately(env: CData) -> None:
    accounts = [env.account_id] + [env.emulator.add_account(env.parent_id)["id"] for _ in range(3)]

    async def main() -> float:
        started, deadline = time.monotonic(), time.time() + 1.5
        waits = [first_event(trigger(f"never-{i}", deadline, accounts[i % 4])) for i in range(40)]
        events = await asyncio.gather(*waits)
        assert {e["status"] for e in events} == {"timeout"}
        return time.monotonic() - started

    elapsed = run_loop(main())
    per_account = list_calls_per_account(env)
    assert set(per_account) == set(accounts), per_account
    assert all(2 <= calls <= at_most(elapsed) for calls in per_account.values()), per_account


def test_each_trigger_fires_on_its_own_criteria(env: CData) -> None:
    emu = env.emulator
    emu.add_connection(env.account_id, external_id="someone-else")

    async def main() -> list[dict[str, Any]]:
        deadline = time.time() + 3
        waits = [asyncio.ensure_future(first_event(trigger(f"customer-{i}", deadline))) for i in range(6)]
        await asyncio.sleep(0.5)
        made = {
            i: emu.add_connection(env.account_id, external_id=f"customer-{i}", status="Authenticated")
            for i in (1, 4)
        }
        # A connection not yet authenticated satisfies no one (statuses defaults to Authenticated).
        emu.add_connection(env.account_id, external_id="customer-2", status="NotAuthenticated")
        events = await asyncio.gather(*waits)
        for i, connection in made.items():
            assert events[i]["connection"]["id"] == connection["id"]
        return events

    events = run_loop(main())
    assert [e["status"] for e in events] == ["timeout", "success", "timeout", "timeout", "success", "timeout"]
    assert events[1]["connection"]["externalId"] == "customer-1"
    assert events[4]["connection"]["externalId"] == "customer-4"
    assert events[1]["connection"] is not events[4]["connection"]


def test_each_trigger_keeps_its_own_deadline_and_timeout_event(env: CData) -> None:
    """Sharing a poll shares no deadline: each trigger fires its timeout at its own, on time."""

    async def main() -> list[tuple[float, dict[str, Any]]]:
        now = time.time()

        async def timed(offset: float) -> tuple[float, dict[str, Any]]:
            event = await first_event(trigger(f"never-{offset}", now + offset))
            return time.time() - (now + offset), event

        return await asyncio.gather(*(timed(offset) for offset in (0.5, 1.0, 1.0, 1.7)))

    for late, event in run_loop(main()):
        assert event["status"] == "timeout"
        assert "never-" in event["message"]
        assert -0.05 <= late < 0.3, f"the timeout event came {late:.2f} s after the deadline"


def test_a_failed_shared_call_reaches_every_subscriber_and_none_stops(
    env: CData, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """One 503 answer (no retries in the hook) is every waiting trigger's failed poll: each logs it and
    backs off on its own, and all go on to find the connection."""
    _connection_env(monkeypatch, env, max_retries=0)
    env.emulator.inject("status", status=503, route="list", times=1)

    async def main() -> list[dict[str, Any]]:
        deadline = time.time() + 10
        waits = [asyncio.ensure_future(first_event(trigger("late", deadline))) for _ in range(20)]
        while env.emulator.counters.count("list") < 2:
            await asyncio.sleep(0.02)
        env.emulator.add_connection(env.account_id, external_id="late", status="Authenticated")
        return await asyncio.gather(*waits)

    events = run_loop(main())
    assert [e["status"] for e in events] == ["success"] * 20
    assert env.emulator.counters.faults == {"status": 1}
    # The triggers' log (Airflow's structlog writes it to the process's output).
    output = capfd.readouterr()
    failed = [line for line in (output.out + output.err).splitlines() if "Polling CData failed" in line]
    assert len(failed) == 20, "each trigger got the failed answer as its own poll"
    assert all("HTTP 503" in line for line in failed)


def test_an_error_of_one_account_ends_its_triggers_only(env: CData) -> None:
    """A 403 (an account of another parent) is an error waiting cannot fix: every trigger on that
    account fires its error event; the triggers of the other account keep polling and succeed."""
    stranger = str(uuid.uuid4())

    async def main() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        deadline = time.time() + 10
        doomed = [first_event(trigger("x", deadline, stranger)) for _ in range(5)]
        errors = await asyncio.gather(*doomed)
        waits = [asyncio.ensure_future(first_event(trigger("ok", deadline))) for _ in range(5)]
        await asyncio.sleep(0.3)
        env.emulator.add_connection(env.account_id, external_id="ok", status="Authenticated")
        return errors, await asyncio.gather(*waits)

    errors, successes = run_loop(main())
    assert [e["status"] for e in errors] == ["error"] * 5
    assert all("403" in e["message"] and stranger in e["message"] for e in errors)
    # The emulator logs no claims of a refused token: the one 403 is that account's.
    assert env.emulator.counters.count("list", 403) == 1, "one call answered every trigger on that account"
    assert [e["status"] for e in successes] == ["success"] * 5


def test_cancelled_triggers_leave_the_rest_polling_and_the_last_one_stops_the_poll(env: CData) -> None:
    from airflow_provider_cdata.polling import active_polls
    from airflow_provider_cdata.transport.aio import shared_clients

    async def main() -> None:
        deadline = time.time() + 600
        waits = [asyncio.ensure_future(first_event(trigger(f"never-{i}", deadline))) for i in range(10)]
        await asyncio.sleep(0.5)
        for wait in waits[:7]:
            wait.cancel()
        await asyncio.wait(waits[:7])
        ((key, poll),) = active_polls().items()
        assert key == ("cdata_default", None)
        assert poll.subscribers == 3
        before = env.emulator.counters.count("list")
        await asyncio.sleep(1.0)
        assert env.emulator.counters.count("list") >= before + 2, "the three left kept polling"
        for wait in waits[7:]:
            wait.cancel()
        await asyncio.wait(waits[7:])
        assert all(wait.cancelled() for wait in waits)
        assert active_polls() == {}, "the last one leaving stopped the poll"
        assert not poll.polling
        assert shared_clients.users(env.base_url) == 0, "the poll's hook released the shared client"

    run_loop(main())
    calls = env.emulator.counters.count("list")
    time.sleep(2 * INTERVAL)
    assert env.emulator.counters.count("list") == calls, "no call after the last trigger left"


def test_a_trigger_with_a_longer_interval_reuses_the_shorter_ones_answers(env: CData) -> None:
    """Different intervals on one account: each trigger's answer is no older than its own interval,
    so the account is polled at the shortest interval waited for, not once per interval."""

    async def main() -> float:
        started, deadline = time.monotonic(), time.time() + 2.0
        waits = [first_event(trigger("a", deadline, interval=INTERVAL))]
        waits += [first_event(trigger(f"b-{i}", deadline, interval=INTERVAL * 3)) for i in range(5)]
        assert {e["status"] for e in await asyncio.gather(*waits)} == {"timeout"}
        return time.monotonic() - started

    elapsed = run_loop(main())
    assert env.emulator.counters.count("list") <= at_most(elapsed)


def test_the_shared_poll_as_an_async_iterator(env: CData) -> None:
    """What an event trigger (or an Airflow 3.3 shared stream) wraps: one listing per interval, shared
    with the waiting triggers of that account."""
    from airflow_provider_cdata.polling import active_polls, listings

    env.emulator.add_connection(env.account_id, external_id="there")

    async def main() -> list[Any]:
        seen = []
        sensor_like = asyncio.ensure_future(first_event(trigger("never", time.time() + 1.5)))
        # aclosing: an async generator left by break is only closed by the loop's shutdown otherwise.
        async with aclosing(listings("cdata_default", None, INTERVAL)) as stream:
            async for listing in stream:
                seen.append(listing)
                if len(seen) == 4:
                    break
        await sensor_like
        assert active_polls() == {}
        return seen

    started = time.monotonic()
    seen = run_loop(main())
    elapsed = time.monotonic() - started
    assert [[c["externalId"] for c in listing.connections] for listing in seen] == [["there"]] * 4
    assert all(b.listed_at - a.listed_at >= INTERVAL * 0.9 for a, b in itertools.pairwise(seen))
    assert env.emulator.counters.count("list") <= at_most(elapsed)
