"""Figure 4: 500 waiting customers, i.e. 500 ConnectionTriggers on one event loop, as in one triggerer.

Each trigger polls List Connections every second for 20 s for a connection that never appears, then
ends with its timeout event. Their starts are spread over the first second, as triggers arrive at
different times in a real triggerer. Measured meanwhile:

* event-loop lag: a ticker task asks to wake every 10 ms and records how late it woke (p50, p99, max);
* CPU seconds of this process per 1,000 polls (``time.process_time``; polls counted by the emulator);
* TCP connections the emulator accepted (the triggers share one pooled ``aiohttp.ClientSession``);
* memory per trigger: the RSS growth from before the triggers start to the middle of the run, divided
  by the number of triggers (each variant runs in a fresh process, as a triggerer does).

Run twice: every trigger for the same child account (one token for all), and every trigger for its own
child account (500 tokens, each registered with Airflow's secrets masker), which is what a triggerer
holding 500 customers' onboarding sensors does.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from benchmarks.common import Row, percentile
from benchmarks.emulator_process import EmulatorProcess, log_path

TRIGGERS = 500
POKE_INTERVAL = 1.0
DURATION = 20.0
TICK = 0.010


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
class TriggerRun:
    events: list[dict[str, Any]]
    lags: list[float]
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


async def _run_triggers(accounts: list[str]) -> TriggerRun:
    from airflow_provider_cdata.triggers import ConnectionTrigger

    await _warm_up()
    baseline = rss_bytes()
    deadline = time.time() + DURATION
    triggers = [
        ConnectionTrigger(
            criteria={"external_id": f"never-{index}"},
            poke_interval=POKE_INTERVAL,
            deadline=deadline,
            account_id=accounts[index % len(accounts)],
        )
        for index in range(TRIGGERS)
    ]
    probe, stop = LoopProbe(), asyncio.Event()
    ticker = asyncio.create_task(probe.tick_until(stop, mid_after=DURATION / 2))
    cpu, wall = time.process_time(), time.perf_counter()
    events = await asyncio.gather(
        *(_first_event(t, POKE_INTERVAL * i / TRIGGERS) for i, t in enumerate(triggers))
    )
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    stop.set()
    await ticker
    return TriggerRun(events, probe.lags, cpu, wall, probe.rss_mid - baseline)


def _rows(label: str, run: TriggerRun, polls: int, connections: int) -> list[Row]:
    from airflow_provider_cdata.hooks import ASYNC_POOL_SIZE

    figure = f"4 triggers, {label}"
    timeouts = sum(event["status"] == "timeout" for event in run.events)
    assert timeouts == TRIGGERS, [e for e in run.events if e["status"] != "timeout"][:3]
    lag_p50, lag_p99 = percentile(run.lags, 0.5), percentile(run.lags, 0.99)
    expected_polls = TRIGGERS * DURATION / POKE_INTERVAL
    return [
        Row(
            figure,
            f"polls made (of ~{expected_polls:,.0f} due); wall time",
            f"{polls:,}; {run.wall_seconds:.1f} s",
            rate=polls / run.wall_seconds,
        ),
        Row(
            figure,
            "event-loop lag p50 / p99 / max",
            f"{lag_p50 * 1000:.1f} / {lag_p99 * 1000:.1f} / {max(run.lags) * 1000:.0f} ms",
        ),
        Row(figure, "CPU seconds per 1,000 polls", f"{run.cpu_seconds / polls * 1000:.2f} s"),
        Row(
            figure,
            f"TCP connections opened (pool of {ASYNC_POOL_SIZE})",
            f"{connections} for {polls:,} polls",
            "shared: < 1 per 100 polls",
            connections * 100 < polls,
        ),
        Row(
            figure,
            "memory per trigger (RSS growth / triggers)",
            f"{run.rss_growth / TRIGGERS / 1024:.1f} KiB",
        ),
    ]


def _run_in_this_process(accounts: list[str], log_path: str) -> TriggerRun:
    with open(log_path, "a", encoding="utf-8") as log, contextlib.redirect_stdout(log):
        return asyncio.run(_run_triggers(accounts))


def run(emulator: EmulatorProcess) -> list[Row]:
    emulator.use_as_cdata_default()
    rows = []
    for label, accounts in (
        ("one account", [emulator.account_id]),
        (f"{TRIGGERS} accounts", emulator.add_accounts(TRIGGERS)),
    ):
        emulator.reset_counters()
        # Each variant in a fresh process (as a triggerer is): no token, client or heap carried over,
        # so the RSS growth is this variant's own.
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as child:
            result = child.submit(_run_in_this_process, accounts, log_path()).result()
        counters = emulator.counters()
        rows += _rows(label, result, counters.count("list"), counters.connections_accepted)
    return rows
