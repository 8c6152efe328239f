"""Soak under faults: 1,000 mixed calls through CDataHook while about 30% of the emulator's answers are bad.

The faults are the emulator's own, seeded: 429 with Retry-After (0 s mostly, 1 s a few times, once as an
HTTP date), 500/502/503/504, nginx-style HTML pages, dropped connections, bodies cut in half, answers
slower than the 0.5 s timeout and answers just slow. Customers go through the whole life of a connection
(create a connect link, the customer saves it, list, clear its metadata three times, edit, for some
delete and list again), first one after another through the sync calls, then ten at a time through the
async calls, as triggers on one event loop would.

Checked: every call succeeds; the emulator ends with exactly the connections the calls meant to keep
(none lost, none extra, every delete done); each connection's metadata was cleared at least as often as
asked, and every extra clear is explained by an answer the client never received (a cut body or a
timeout after the server had cleared); every attempt the hook made is one the emulator saw, every failed
attempt was retried once, no call went past its retry budget. Retry-After is honoured as sent, not
capped; only the exponential backoff is shortened (the ``fast_retries`` fixture: 5 ms doubling to 20 ms).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest

from airflow_provider_cdata.emulator import complete_flow
from airflow_provider_cdata.hooks import CDataHook, RetryPolicy
from tests.conftest import CData, cdata_connection, reset_secrets_masker

CALLS = 1000
MAX_RETRIES = 8
TIMEOUT = 0.5
CLEARS = 3  # metadata clears per customer
SYNC_CUSTOMERS = 60  # one after another; every second one deleted; the account listed after each
ASYNC_CUSTOMERS = 80  # ten at a time, a hook each; every fourth one deleted
REDIRECT = "https://app.example.com/connected"
# In the order the emulator draws them for each request: latency first (it adds to any other fault),
# then at most one failing answer.
FAULTS: list[tuple[str, dict[str, Any]]] = [
    ("latency", {"seconds": 0.05, "rate": 0.05}),
    ("latency", {"seconds": TIMEOUT + 0.3, "rate": 0.02, "times": 6}),
    ("status", {"status": 429, "retry_after": 1, "rate": 0.02, "times": 3}),
    ("status", {"status": 429, "retry_after": 1, "retry_after_date": True, "rate": 0.02, "times": 1}),
    ("status", {"status": 429, "retry_after": 0, "rate": 0.04}),
    ("status", {"status": 500, "rate": 0.03}),
    ("status", {"status": 502, "rate": 0.03}),
    ("status", {"status": 503, "rate": 0.03}),
    ("status", {"status": 504, "rate": 0.03}),
    ("html", {"rate": 0.03}),
    ("drop", {"rate": 0.04}),
    ("truncated", {"rate": 0.04}),
]
ATTEMPT = re.compile(
    r"^CData API (?P<method>[A-Z]+) (?P<path>\S+) -> (?P<outcome>\S+) in [\d.]+ ms \(attempt (?P<n>\d+)\)$"
)
API_ROUTES = ("create", "edit", "list", "delete", "clear_metadata")
NOT_SENT = (
    "ConnectTimeout",
    "ClientConnectorError",
    "PoolTimeout",
)  # requests' and aiohttp's "could not connect"


@dataclass
class Customer:
    index: int
    delete: bool
    connection_id: str = ""


@dataclass
class Soak:
    """Makes the calls (sync through a worker thread, or async) and counts them."""

    cdata: CData
    calls: int = 0
    hooks: list[CDataHook] = field(default_factory=list)

    async def call(self, hook: CDataHook, mode: str, name: str, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if mode == "sync":
            return await asyncio.to_thread(getattr(hook, name), *args, **kwargs)
        return await getattr(hook, f"a{name}")(*args, **kwargs)

    async def life_of(self, customer: Customer, hook: CDataHook, mode: str) -> None:
        """One customer's connection, from connect link to (maybe) deletion; checks each answer."""
        external_id = f"soak-{customer.index}"
        # In production each customer's Create/Edit runs in a task process of its own, whose secrets
        # masker starts empty. One process holding all 280 links' tokens would spend ~90 s recompiling
        # Airflow's masker regex, which is not what this test is about.
        reset_secrets_masker()
        url = await self.call(
            hook, mode, "create_connection", "Salesforce", REDIRECT, external_id=external_id
        )
        saved = await asyncio.to_thread(complete_flow, url, name=f"Soak {customer.index}")
        customer.connection_id = saved["cdata_connection_id"]
        listed = await self.call(hook, mode, "list_connections", external_id=external_id)
        assert [c["id"] for c in listed] == [customer.connection_id]
        for _ in range(CLEARS):
            await self.call(hook, mode, "clear_metadata", customer.connection_id)
        edit_url = await self.call(hook, mode, "edit_connection", customer.connection_id, REDIRECT)
        assert f"/oem/user/connections/edit/{customer.connection_id}?" in edit_url
        if customer.delete:
            await self.call(hook, mode, "delete_connection", customer.connection_id)
            assert await self.call(hook, mode, "list_connections", external_id=external_id) == []

    async def sync_phase(self, customers: list[Customer]) -> None:
        hook = CDataHook()
        self.hooks.append(hook)
        for customer in customers:
            await self.life_of(customer, hook, "sync")
            kept = {c.connection_id for c in customers[: customer.index + 1] if not c.delete}
            listed = await self.call(hook, "sync", "list_connections")
            assert {c["id"] for c in listed} == kept, "after each customer, exactly the kept connections"

    async def async_phase(self, customers: list[Customer], at_once: int = 10) -> None:
        slots = asyncio.Semaphore(at_once)

        async def one(customer: Customer) -> None:
            async with slots:
                hook = CDataHook()  # a hook each, as each trigger has; they share one client
                try:
                    await self.life_of(customer, hook, "async")
                finally:
                    await hook.aclose()

        await asyncio.gather(*(one(customer) for customer in customers))


def attempts_logged(records: list[logging.LogRecord]) -> list[dict[str, str]]:
    found = [ATTEMPT.match(r.getMessage()) for r in records if r.name == "airflow_provider_cdata.hooks"]
    return [m.groupdict() for m in found if m]


def wait_until_idle(cdata: CData, timeout: float = 10.0) -> None:
    """Answers slowed past the client's timeout are still being served: let the emulator finish them."""
    deadline = time.monotonic() + timeout
    while any(cdata.emulator.counters.in_flight.values()) and time.monotonic() < deadline:
        time.sleep(0.02)


def api_requests(cdata: CData) -> int:
    return sum(cdata.emulator.counters.count(route) for route in API_ROUTES)


@pytest.fixture
def soak_connection(cdata: CData, monkeypatch: pytest.MonkeyPatch, fast_retries: RetryPolicy) -> CData:
    connection = cdata_connection(cdata, timeout=TIMEOUT, max_retries=MAX_RETRIES)
    monkeypatch.setenv("AIRFLOW_CONN_CDATA_DEFAULT", json.dumps(connection))
    return cdata


def test_1000_calls_under_30_percent_faults_all_succeed_and_leave_exactly_the_intended_state(
    soak_connection: CData, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    cdata, emu = soak_connection, soak_connection.emulator
    rules = [emu.inject(kind, **options) for kind, options in FAULTS]
    sync_customers = [Customer(i, delete=i % 2 == 1) for i in range(SYNC_CUSTOMERS)]
    async_customers = [Customer(SYNC_CUSTOMERS + i, delete=i % 4 == 0) for i in range(ASYNC_CUSTOMERS)]
    soak = Soak(cdata)
    caplog.set_level(logging.DEBUG, logger="airflow_provider_cdata.hooks")
    started = time.monotonic()

    async def both_phases() -> None:
        await soak.sync_phase(sync_customers)
        await soak.async_phase(async_customers)

    asyncio.run(both_phases())
    elapsed = time.monotonic() - started
    for hook in soak.hooks:
        hook.close()
    wait_until_idle(cdata)

    assert soak.calls == CALLS
    # -- the state is what the calls meant -------------------------------------------------------
    customers = sync_customers + async_customers
    kept = {c.connection_id: f"soak-{c.index}" for c in customers if not c.delete}
    state = {c["id"]: c for c in emu.connections(cdata.account_id)}
    assert {i: c["externalId"] for i, c in state.items()} == kept, "no connection lost, none extra"
    assert all(c.connection_id not in state for c in customers if c.delete), "every delete done"

    # -- every attempt accounted for ------------------------------------------------------------
    attempts = attempts_logged(caplog.records)
    failed = [a for a in attempts if not a["outcome"].startswith("2")]
    # Every attempt that got an HTTP status reached the emulator, and the emulator saw nothing the client
    # did not send. An attempt with no answer may not have: a failed connect, or a request on a kept-alive
    # connection the server had already closed, which requests reports as a plain ConnectionError (seen on
    # a loaded machine after the DEBUG leak scan: 9 of 1,371 attempts), so those bound the gap.
    answered = sum(a["outcome"][0].isdigit() for a in attempts)
    seen = api_requests(cdata)
    assert answered <= seen <= len(attempts), "every answered attempt reached the emulator, nothing more"
    assert sum(a["outcome"] in NOT_SENT for a in attempts) <= len(attempts) - seen
    assert len(attempts) - len(failed) == CALLS, "one successful attempt per call"
    started_as, failed_as = Counter(int(a["n"]) for a in attempts), Counter(int(a["n"]) for a in failed)
    assert started_as[1] == CALLS
    assert all(started_as[n + 1] == failed_as[n] for n in failed_as), "each failed attempt retried once"
    assert max(started_as) <= MAX_RETRIES + 1, "no call past its retry budget"

    # -- metadata clears: at least as asked; extras only where an answer never came back ----------
    truncated = Counter(
        r.path.removeprefix("/api") for r in emu.requests("clear_metadata") if r.fault == "truncated"
    )
    unanswered = Counter(a["path"] for a in failed if not a["outcome"][0].isdigit())
    extra_clears = 0
    for connection_id, connection in state.items():
        path = f"/poweredby/connection/{connection_id}/metadata"
        extra = connection["metadataClears"] - CLEARS
        assert truncated[path] <= extra <= unanswered[path], (connection_id, connection["metadataClears"])
        extra_clears += extra

    # -- the faults were real, and about 30% of all answers ---------------------------------------
    injected = sum(rule.fired for rule in rules)
    share = injected / api_requests(cdata)
    assert 0.25 <= share <= 0.40, f"{injected} faults in {api_requests(cdata)} answers"
    assert all(rule.fired for rule in rules), [(r.kind, r.status, r.fired) for r in rules]
    by_kind: Counter[str] = Counter()
    for rule in rules:
        by_kind[f"{rule.status}" if rule.kind == "status" else rule.kind] += rule.fired
    with capsys.disabled():
        print(
            f"\nsoak: {soak.calls} calls, {len(attempts)} attempts ({len(failed)} retried), "
            f"{injected} faults injected in {api_requests(cdata)} answers ({share:.0%}): "
            f"{dict(sorted(by_kind.items()))}; {extra_clears} extra metadata clears, all explained; "
            f"{len(kept)} connections kept, {sum(c.delete for c in customers)} deleted; {elapsed:.1f} s"
        )


def test_soak_helpers_count_what_they_claim(soak_connection: CData, caplog: pytest.LogCaptureFixture) -> None:
    """The attempt parser and the request count agree on a call retried twice (so the soak's sums mean
    what they say)."""
    soak_connection.emulator.inject("status", status=503, times=2, route="list")
    caplog.set_level(logging.DEBUG, logger="airflow_provider_cdata.hooks")
    hook = CDataHook()
    hook.list_connections()
    hook.close()
    attempts = attempts_logged(caplog.records)
    assert [(a["outcome"], a["n"]) for a in attempts] == [("503", "1"), ("503", "2"), ("200", "3")]
    assert api_requests(soak_connection) == 3
