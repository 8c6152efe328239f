"""Figures 3 and 8: ClearMetadataOperator against the cheapest client there is, side by side.

Figure 3: 500 connections, each clear answered 20 ms late, 8 at a time. Figure 8: 5,000 connections,
20 ms, 32 at a time, with the TCP connections each client opened.

The operator's ``execute()`` is called directly with an empty context (as Airflow's task runner would
call it, without the DAG run around it: parsing, the metadata database and the task runner's own
bookkeeping cost the same with or without this provider and would only blur the figure). With no ids
given, it lists the account's connections, then clears each one on the hook's async path,
``max_concurrency`` in flight. Each round runs the raw asyncio client and then the operator on the
same emulator, so both see the same load of the (shared) machine: the figures are medians of the
rounds, and the operator's share is the median of the per-round ratios. The client's CPU is this
process's (the emulator runs in its own), per clear, for the whole ``execute()``: reading the
connection and the key, the token, the listing and every clear.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any, cast

from benchmarks import raw_http
from benchmarks.common import Row
from benchmarks.emulator_process import EmulatorProcess

LATENCY = 0.020


@dataclass(frozen=True)
class Run:
    wall: float
    cpu: float
    connections: int
    peak: int


def _operator(emulator: EmulatorProcess, count: int, max_concurrency: int) -> Run:
    from airflow.sdk.bases.operator import ExecutorSafeguard

    from airflow_provider_cdata.operators import ClearMetadataOperator

    operator = ClearMetadataOperator(task_id=f"clear_{max_concurrency}", max_concurrency=max_concurrency)
    emulator.reset_counters()
    ExecutorSafeguard.test_mode = True  # execute() outside a task runner, without its warning
    cpu, started = time.process_time(), time.perf_counter()
    cleared = operator.execute(cast(Any, {}))
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    operator.hook.close()
    counters = emulator.counters()
    assert len(cleared) == count, len(cleared)
    assert counters.count("clear_metadata", 200) == count, counters.snapshot
    return Run(wall, cpu, counters.connections_accepted, counters.max_in_flight("clear_metadata"))


def _raw(emulator: EmulatorProcess, ids: list[str], concurrency: int) -> Run:
    """The same clears from raw HTTP/1.1 on asyncio streams, ``concurrency`` keep-alive connections."""
    token = emulator.token(emulator.account_id)
    requests = [
        raw_http.request_bytes("DELETE", emulator.root_url, f"/api/poweredby/connection/{i}/metadata", token)
        for i in ids
    ]
    emulator.reset_counters()
    cpu = time.process_time()
    wall = raw_http.elapsed(emulator.root_url, [requests[k::concurrency] for k in range(concurrency)])
    cpu = time.process_time() - cpu
    counters = emulator.counters()
    assert counters.count("clear_metadata", 200) == len(ids)
    return Run(wall, cpu, counters.connections_accepted, counters.max_in_flight("clear_metadata"))


def _rounds(
    emulator: EmulatorProcess, count: int, concurrency: int, rounds: int
) -> tuple[list[Run], list[Run]]:
    emulator.use_as_cdata_default()
    ids = emulator.add_connections(count)
    emulator.inject("latency", route="clear_metadata", seconds=LATENCY)
    raws, operators = [], []
    for _ in range(rounds):
        raws.append(_raw(emulator, ids, concurrency))
        operators.append(_operator(emulator, count, concurrency))
    return raws, operators


def _median(runs: list[Run], field: str) -> float:
    return statistics.median(float(getattr(run, field)) for run in runs)


def _rows(figure: str, count: int, concurrency: int, raws: list[Run], operators: list[Run]) -> list[Row]:
    ideal = count * LATENCY / concurrency
    raw, op = _median(raws, "wall"), _median(operators, "wall")
    share = statistics.median(o.wall / r.wall for r, o in zip(raws, operators, strict=True))
    rounds = len(raws)
    return [
        Row(figure, f"ideal: {count:,} x {LATENCY * 1000:.0f} ms / {concurrency}", f"{ideal:.2f} s"),
        Row(
            figure,
            f"raw asyncio client, {concurrency} connections (median of {rounds})",
            f"{raw:.2f} s ({raw / ideal:.2f}x ideal)",
        ),
        Row(
            figure,
            f"operator, max_concurrency={concurrency} (median of {rounds}; peak in flight "
            f"{max(o.peak for o in operators)})",
            f"{op:.2f} s ({op / ideal:.2f}x ideal)",
            rate=count / op,
        ),
        Row(
            figure,
            "operator / raw client, same round (median of per-round ratios)",
            f"{share:.3f}",
            "<= 1.05",
            share <= 1.05,
        ),
        Row(
            figure,
            "client CPU per clear: operator / raw client (medians)",
            f"{_median(operators, 'cpu') / count * 1e6:.0f} / {_median(raws, 'cpu') / count * 1e6:.0f} µs",
        ),
    ]


def run(emulator: EmulatorProcess) -> list[Row]:
    """Figure 3."""
    count, concurrency = 500, 8
    raws, operators = _rounds(emulator, count, concurrency, rounds=5)
    rows = _rows("3 bulk refresh", count, concurrency, raws, operators)
    ratio = _median(operators, "wall") / (count * LATENCY / concurrency)
    rows.append(Row("3 bulk refresh", "operator / ideal", f"{ratio:.2f}", "<= 1.3", ratio <= 1.3))
    sequential = _operator(emulator, count, 1)
    rows.append(Row("3 bulk refresh", "operator, max_concurrency=1 (sequential)", f"{sequential.wall:.2f} s"))
    return rows


def run_at_scale(emulator: EmulatorProcess) -> list[Row]:
    """Figure 8: a thousand-connection customer base and more."""
    count, concurrency = 5_000, 32
    raws, operators = _rounds(emulator, count, concurrency, rounds=3)
    figure = "8 bulk refresh, 5,000"
    rows = _rows(figure, count, concurrency, raws, operators)
    opened = max(o.connections for o in operators)
    rows.append(
        Row(
            figure,
            "TCP connections opened by the operator (most of any round; raw client)",
            f"{opened} ({max(r.connections for r in raws)})",
            f"<= {concurrency}",
            opened <= concurrency,
        )
    )
    return rows
