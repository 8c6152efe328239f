"""Figure 4: waiting customers, i.e. many ConnectionTriggers on one event loop, as in one triggerer.

Each trigger polls for a connection that never appears until its deadline, then ends with its
timeout event; starts are spread over the first interval, as triggers arrive at different times in a
real triggerer, and each trigger's deadline is its own (its start + the duration). Every scenario runs
twice in the same run, each side in a fresh process whose triggers share one event loop (one thread:
at most one core, the emulator has its own process): the shared poll (the provider: one List
Connections per child account per interval, airflow_provider_cdata/polling.py) and the old
per-trigger polling (benchmarks/per_trigger_polling.py).

* 500 triggers for one child account, 1 s interval, 20 s;
* 500 triggers over 50 child accounts, 1 s interval, 20 s;
* 5,000 triggers over 500 child accounts at the sensor's default 30 s interval, 62 s (two intervals
  and a bit; not compressed: the real interval, the real trigger count).

Measured meanwhile:

* API calls per child account per interval (List Connections counted by the emulator);
* trigger polls (each trigger's own asks, answered by a call or by the shared answer) and CPU
  seconds of the process per 1,000 of them (``time.process_time``);
* event-loop lag: a ticker task asks to wake every 10 ms and records how late it woke (p50, p99, max);
* the interval kept: how late each trigger's poll came after its ``poke_interval`` sleep (p99);
* TCP connections the emulator accepted (the triggers share one pooled ``aiohttp.ClientSession``), and
  memory per trigger (RSS growth to mid-run / triggers).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing
import os
import time
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from benchmarks.common import Row, percentile
from benchmarks.emulator_process import EmulatorProcess, log_path

TICK = 0.010


@dataclass(frozen=True)
class Scenario:
    label: str
    triggers: int
    accounts: int
    interval: float
    duration: float


SCENARIOS = (
    Scenario("500 triggers, one account", 500, 1, 1.0, 20.0),
    Scenario("500 triggers, 50 accounts", 500, 50, 1.0, 20.0),
    Scenario("5,000 triggers, 500 accounts, 30 s", 5000, 500, 30.0, 62.0),
)
SIDES = ("shared", "per-trigger")


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@dataclass
class LoopProbe:
    """A ticker on the loop: how late each 10 ms wake-up came, and the RSS in the middle of the run."""

    lags: list[float] = field(default_factory=list)
    rss_mid: int = 0

    async def tick_until(self, stop: asyncio.Event, mid_after: float) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        while not stop.is_set():
            expected = loop.time() + TICK
            await asyncio.sleep(TICK)
            self.lags.append(loop.time() - expected)
            if not self.rss_mid and loop.time() - started >= mid_after:
                self.rss_mid = rss_bytes()


@dataclass
class PollLog:
    """Every trigger poll, and how late each came after the trigger's sleep of one interval."""

    polls: int = 0
    late: list[float] = field(default_factory=list)


class _Counted:
    """A trigger's connection source, counting its polls and the lateness of each after the first."""

    def __init__(self, source: Any, log: PollLog, interval: float) -> None:
        self.source, self.log, self.interval = source, log, interval
        self.returned: float | None = None

    async def connections(self, max_age: float) -> list[dict[str, Any]]:
        now = time.monotonic()
        self.log.polls += 1
        if self.returned is not None:
            self.log.late.append(now - self.returned - self.interval)
        try:
            connections: list[dict[str, Any]] = await self.source.connections(max_age)
            return connections
        finally:
            self.returned = time.monotonic()


def _trigger_class(shared: bool, log: PollLog) -> type[Any]:
    from airflow_provider_cdata.triggers import ConnectionTrigger
    from benchmarks.per_trigger_polling import PerTriggerPollingTrigger

    base: type[ConnectionTrigger] = ConnectionTrigger if shared else PerTriggerPollingTrigger

    class Counted(base):  # type: ignore[valid-type,misc]
        @contextlib.asynccontextmanager
        async def _subscribe(self) -> AsyncIterator[Any]:
            async with super()._subscribe() as source:
                yield _Counted(source, log, self.poke_interval)

    return Counted


@dataclass
class TriggerRun:
    events: list[dict[str, Any]]
    lags: list[float]
    polls: PollLog
    cpu_seconds: float
    wall_seconds: float
    rss_growth: int


async def _first_event(trigger: Any, delay: float) -> dict[str, Any]:
    await asyncio.sleep(delay)
    async for event in trigger.run():
        payload: dict[str, Any] = event.payload
        return payload
    raise AssertionError("a trigger ended without an event")


async def _warm_up() -> None:
    """Load what every trigger needs (modules, the key, aiohttp) before the baseline is read."""
    from airflow_provider_cdata.hooks import CDataHook

    hook = CDataHook()
    await hook.alist_connections()
    await hook.aclose()


async def _run_triggers(scenario: Scenario, shared: bool, accounts: list[str]) -> TriggerRun:
    await _warm_up()
    log = PollLog()
    trigger_class = _trigger_class(shared, log)
    baseline = rss_bytes()
    # Each trigger waits ``duration`` from its own start, as each sensor's deadline is its own: 5,000
    # timeouts at one instant would measure a burst no triggerer sees.
    spread, started = scenario.interval / scenario.triggers, time.time()
    triggers = [
        trigger_class(
            criteria={"external_id": f"never-{index}"},
            poke_interval=scenario.interval,
            deadline=started + spread * index + scenario.duration,
            account_id=accounts[index % len(accounts)],
        )
        for index in range(scenario.triggers)
    ]
    probe, stop = LoopProbe(), asyncio.Event()
    ticker = asyncio.create_task(probe.tick_until(stop, mid_after=scenario.duration / 2))
    cpu, wall = time.process_time(), time.perf_counter()
    events = await asyncio.gather(*(_first_event(t, spread * i) for i, t in enumerate(triggers)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    stop.set()
    await ticker
    return TriggerRun(events, probe.lags, log, cpu, wall, probe.rss_mid - baseline)


def _run_in_this_process(scenario: Scenario, shared: bool, accounts: list[str], log_path: str) -> TriggerRun:
    with open(log_path, "a", encoding="utf-8") as log, contextlib.redirect_stdout(log):
        return asyncio.run(_run_triggers(scenario, shared, accounts))


def _due(scenario: Scenario) -> int:
    """Polls the triggers make if every one keeps its interval exactly: one every interval from its
    start while before its deadline, and its last one, at the deadline itself."""
    return scenario.triggers * (math.ceil(scenario.duration / scenario.interval) + 1)


def _rows(scenario: Scenario, side: str, run: TriggerRun, calls: int, connections: int) -> list[Row]:
    from airflow_provider_cdata.hooks import ASYNC_POOL_SIZE

    figure = f"4 {scenario.label}, {side}"
    timeouts = sum(event["status"] == "timeout" for event in run.events)
    assert timeouts == scenario.triggers, [e for e in run.events if e["status"] != "timeout"][:3]
    # The accounts are polled while any of their triggers waits: from the first start to the last
    # deadline (the duration plus the interval the starts are spread over), i.e. the wall time.
    intervals = run.wall_seconds / scenario.interval
    per_account = calls / scenario.accounts / intervals
    shared = side == "shared"
    lag_p50, lag_p99 = percentile(run.lags, 0.5), percentile(run.lags, 0.99)
    late_p99 = percentile(run.polls.late, 0.99)
    big = scenario.triggers > 1000
    rows = [
        Row(
            figure,
            "API calls per child account per interval",
            f"{per_account:.2f} ({calls:,} calls, {scenario.accounts} accounts, {intervals:.1f} intervals)",
            "<= 1.1" if shared else "",
            per_account <= 1.1 if shared else None,
            rate=calls / run.wall_seconds,
        ),
        Row(
            figure,
            "trigger polls made (of due); wall time",
            f"{run.polls.polls:,} of {_due(scenario):,}; {run.wall_seconds:.1f} s",
        ),
        Row(
            figure,
            "CPU seconds per 1,000 trigger polls",
            f"{run.cpu_seconds / max(run.polls.polls, 1) * 1000:.3f} s ({run.cpu_seconds:.1f} s in all, "
            f"{run.cpu_seconds / run.wall_seconds:.0%} of one core)",
        ),
        Row(
            figure,
            "event-loop lag p50 / p99 / max",
            f"{lag_p50 * 1000:.1f} / {lag_p99 * 1000:.1f} / {max(run.lags) * 1000:.0f} ms",
            "p99 < 50 ms" if big and shared else "",
            lag_p99 < 0.050 if big and shared else None,
        ),
        Row(
            figure,
            "poll lateness after the interval p99",
            f"{late_p99 * 1000:.1f} ms",
            "< 50 ms" if big and shared else "",
            late_p99 < 0.050 if big and shared else None,
        ),
        Row(
            figure,
            f"TCP connections opened (pool of {ASYNC_POOL_SIZE}); memory per trigger",
            f"{connections}; {run.rss_growth / scenario.triggers / 1024:.1f} KiB",
        ),
    ]
    return rows


def run(emulator: EmulatorProcess) -> list[Row]:
    emulator.use_as_cdata_default()
    many = max(s.accounts for s in SCENARIOS)
    accounts = [emulator.account_id, *emulator.add_accounts(many - 1)]
    rows = []
    for scenario in SCENARIOS:
        for side in SIDES:
            emulator.reset_counters()
            # Each side in a fresh process (as a triggerer is): no token, client or heap carried over.
            spawn = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as child:
                shared, some = side == "shared", accounts[: scenario.accounts]
                result = child.submit(_run_in_this_process, scenario, shared, some, log_path()).result()
            counters = emulator.counters()
            calls = counters.count("list") - 1  # less the warm-up's own call
            rows += _rows(scenario, side, result, calls, counters.connections_accepted)
    return rows
