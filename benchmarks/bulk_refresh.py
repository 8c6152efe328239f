"""Figure 3: ClearMetadataOperator over 500 connections, each clear answered 20 ms late, 8 at a time.

The operator's ``execute()`` is called directly with an empty context (as Airflow's task runner would
call it, without the DAG run around it: parsing, the metadata database and the task runner's own
bookkeeping cost the same with or without this provider and would only blur the figure). With no ids
given, it lists the account's connections, then clears each one on a pool of ``max_concurrency`` threads.
"""

from __future__ import annotations

import time
from typing import Any, cast

from benchmarks import raw_http
from benchmarks.common import Row
from benchmarks.emulator_process import EmulatorProcess

CONNECTIONS = 500
LATENCY = 0.020
CONCURRENCY = 8


def _clear_all(emulator: EmulatorProcess, max_concurrency: int) -> tuple[float, int]:
    """Run the operator once; return its wall time and the peak of clears in flight at the emulator."""
    from airflow.sdk.bases.operator import ExecutorSafeguard

    from airflow_provider_cdata.operators import ClearMetadataOperator

    operator = ClearMetadataOperator(task_id=f"clear_{max_concurrency}", max_concurrency=max_concurrency)
    emulator.reset_counters()
    ExecutorSafeguard.test_mode = True  # execute() outside a task runner, without its warning
    started = time.perf_counter()
    cleared = operator.execute(cast(Any, {}))
    elapsed = time.perf_counter() - started
    operator.hook.close()
    counters = emulator.counters()
    assert len(cleared) == CONNECTIONS, len(cleared)
    assert counters.count("clear_metadata", 200) == CONNECTIONS, counters.snapshot
    return elapsed, counters.max_in_flight("clear_metadata")


def _bare_client(emulator: EmulatorProcess, ids: list[str]) -> float:
    """The same clears from the cheapest client there is, 8 connections: the emulator's share."""
    token = emulator.token(emulator.account_id)
    requests = [
        raw_http.request_bytes("DELETE", emulator.root_url, f"/api/poweredby/connection/{i}/metadata", token)
        for i in ids
    ]
    emulator.reset_counters()
    seconds = raw_http.elapsed(emulator.root_url, [requests[k::CONCURRENCY] for k in range(CONCURRENCY)])
    assert emulator.counters().count("clear_metadata", 200) == len(ids)
    return seconds


def run(emulator: EmulatorProcess) -> list[Row]:
    emulator.use_as_cdata_default()
    ids = emulator.add_connections(CONNECTIONS)
    emulator.inject("latency", route="clear_metadata", seconds=LATENCY)
    ideal = CONNECTIONS * LATENCY / CONCURRENCY
    bare = _bare_client(emulator, ids)
    parallel, peak = _clear_all(emulator, CONCURRENCY)
    sequential, _ = _clear_all(emulator, 1)
    ratio = parallel / ideal
    figure = "3 bulk refresh"
    return [
        Row(figure, f"ideal: {CONNECTIONS} x {LATENCY * 1000:.0f} ms / {CONCURRENCY}", f"{ideal:.2f} s"),
        Row(figure, f"bare asyncio client, {CONCURRENCY} connections", f"{bare:.2f} s ({bare / ideal:.2f}x)"),
        Row(
            figure,
            f"operator, max_concurrency={CONCURRENCY} (peak in flight {peak})",
            f"{parallel:.2f} s",
            rate=CONNECTIONS / parallel,
        ),
        Row(figure, "operator / bare client (the provider's share)", f"{parallel / bare:.2f}"),
        Row(figure, "operator / ideal", f"{ratio:.2f}", "<= 1.3", ratio <= 1.3),
        Row(figure, "operator, max_concurrency=1 (sequential)", f"{sequential:.2f} s"),
    ]
